"""Shared fixtures: a temporary jar, real commands, real worker processes.

Every test gets its own jar and ``HOME``, so no personal configuration leaks
in.  Workers started through the fixture are remembered by pid and stopped at
the end (STOP_ALL first, then SIGKILL by pid for any that linger).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
sys.path.insert(0, str(ROOT))


def wait_for(condition, timeout: float = 30.0, interval: float = 0.02, message: str = ""):
    """Poll ``condition`` until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def one_line_error(result: subprocess.CompletedProcess, *expect: str,
                   status: int | None = None) -> str:
    """Assert a failed command said exactly one line and no traceback; return it.

    ``status``: the exit status it must have (any non-zero one by default).
    """
    if status is None:
        assert result.returncode != 0, (result.stdout, result.stderr)
    else:
        assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in expect:
        assert word in lines[0], lines[0]
    return lines[0]


def stop_workers(workers_dir: Path, pids: list[int]) -> None:
    """STOP_ALL, a few seconds to obey, then SIGKILL by pid for any that linger."""
    if not pids:
        return
    if workers_dir.is_dir():
        (workers_dir / "STOP_ALL").touch()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class TestJar:
    """A jar in a temporary directory, with helpers to drive it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "jar"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JJ_")}
        self.env.update(HOME=str(root / "home"), JJ_HOME=str(self.home), JJ_ALLOW_ROOT="yes",
                        JJ_PAUSE_TIME="0.2", JJ_HEARTBEAT="0.5", JJ_KILL_GRACE="2",
                        PYTHONDONTWRITEBYTECODE="1")
        (root / "home").mkdir()
        self.worker_pids: list[int] = []

    @property
    def workers_dir(self) -> Path:
        return Path(self.env.get("JJ_WORKER_HOME", self.home / "workers"))

    def path(self, *parts: str) -> Path:
        return self.home.joinpath(*parts)

    def run(self, command: str, *args: str, env: dict | None = None, check: bool = False,
            input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``bin/<command>`` with this jar's environment."""
        full_env = {**self.env, **(env or {})}
        result = subprocess.run([str(BIN / command), *args], env=full_env, capture_output=True,
                                text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{command} {args} failed ({result.returncode}): {result.stderr}")
        return result

    def submit(self, *args: str, env: dict | None = None) -> str:
        """``submit_job ARGS``; return the job's name."""
        return self.run("submit_job", *args, env=env, check=True).stdout.strip()

    def start_worker(self, *categories: str, env: dict | None = None) -> str:
        """Start a detached worker; return its directory name."""
        name = self.run("start_worker", *categories, env=env, check=True).stdout.strip()
        self.worker_pids.append(int(name.rsplit(".", 1)[1]))
        return name

    def submit_by_hand(self, name: str, content: str = "#!/bin/sh\ntrue\n",
                       category: str | None = None, mode: int = 0o755) -> Path:
        """Submit the way the guide shows: write in limbo/, then ``mv``."""
        limbo = self.path("limbo")
        limbo.mkdir(parents=True, exist_ok=True)
        src = limbo / name
        src.write_text(content)
        src.chmod(mode)
        target_dir = self.path("unclaimed", category) if category else self.path("unclaimed")
        target_dir.mkdir(parents=True, exist_ok=True)
        os.rename(src, target_dir / name)
        return target_dir / name

    def completed(self) -> list[str]:
        try:
            return sorted(os.listdir(self.path("completed")))
        except FileNotFoundError:
            return []

    def record(self, name: str) -> dict | None:
        from jobjar import records

        return records.read(self.path("results", f"{name}.yaml"))

    def wait_completed(self, count: int, timeout: float = 60) -> list[str]:
        return wait_for(lambda: len(self.completed()) >= count and self.completed(), timeout,
                        message=f"{count} completed jobs")

    def stop_all_workers(self) -> None:
        if self.worker_pids:
            self.workers_dir.mkdir(parents=True, exist_ok=True)
        stop_workers(self.workers_dir, self.worker_pids)
        self.worker_pids.clear()


@pytest.fixture
def small_disk(jar):
    """The jar on a 1 MiB tmpfs (root only: skips loudly where mounting is not allowed)."""
    jar.home.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "jobjar-test",
                            str(jar.home)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"FULL-DISK TEST SKIPPED: cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield jar.home
    finally:
        jar.stop_all_workers()
        subprocess.run(["umount", "-l", str(jar.home)], check=False)


@pytest.fixture
def jar(tmp_path):
    """A fresh jar; its workers are stopped when the test ends."""
    test_jar = TestJar(tmp_path)
    old_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(test_jar.env)
    try:
        yield test_jar
    finally:
        test_jar.stop_all_workers()
        from jobjar import config

        config._overrides.clear()
        os.environ.clear()
        os.environ.update(old_env)


# -- two real Unix users -------------------------------------------------------


class Team:
    """Two real Unix users, ``ann`` and ``bob``, in one group, sharing a jar.

    Made by the ``team`` fixture (root only).  The package and ``bin/`` are
    copied into a directory both users can read (the checkout may sit under
    a home they cannot enter), and commands run with a Python that both can
    execute and that has the dependencies (Debian's, installed by
    ``.ci/run``).  ``jar`` is set up as ``docs/security.md``'s team set-up:
    group-writable, set-gid, umask 002.
    """

    def __init__(self, root: Path, python: str, suffix: str) -> None:
        import grp
        import pwd
        import shutil

        self.root = root
        self.python = python
        self.group = f"jjt{suffix}"
        self.names = {"ann": f"jja{suffix}", "bob": f"jjb{suffix}"}
        subprocess.run(["groupadd", self.group], check=True)
        for login in self.names.values():
            subprocess.run(["useradd", "-M", "-N", "-g", self.group, "-s", "/bin/sh",
                            "-d", str(root / login), login], check=True)
        self.gid = grp.getgrnam(self.group).gr_gid
        self.uid = {who: pwd.getpwnam(login).pw_uid for who, login in self.names.items()}
        self.code = root / "code"
        shutil.copytree(ROOT / "jobjar", self.code / "jobjar",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "bin", self.code / "bin", symlinks=True)
        for who, login in self.names.items():
            home = root / login
            home.mkdir()
            os.chown(home, self.uid[who], self.gid)
        self.home = root / "jar"
        self.home.mkdir()
        os.chown(self.home, self.uid["ann"], self.gid)
        self.home.chmod(0o2770)
        self.worker_pids: list[int] = []

    def end_processes(self) -> None:
        """SIGKILL, by pid, whatever still runs as the team's users (a job that never
        ended outlives its killed worker), so that ``userdel`` can remove them."""
        uids = set(self.uid.values())
        for _ in range(50):
            pids = []
            for entry in os.listdir("/proc"):
                try:
                    if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid in uids:
                        pids.append(int(entry))
                except OSError:
                    continue
            live = [pid for pid in pids if pid_alive(pid)]
            if not live:
                return
            for pid in live:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def env(self, who: str, extra: dict | None = None) -> dict:
        """The environment of ``who`` using the shared jar."""
        env = {"HOME": str(self.root / self.names[who]), "USER": self.names[who],
               "LOGNAME": self.names[who], "PATH": f"{self.code / 'bin'}:/usr/bin:/bin",
               "JJ_HOME": str(self.home), "JJ_PAUSE_TIME": "0.2", "JJ_HEARTBEAT": "0.5",
               "JJ_KILL_GRACE": "2", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update(extra or {})
        return env

    def run(self, who: str, command: str, *args: str, env: dict | None = None,
            umask: int = 0o002, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``bin/COMMAND`` as ``who`` (with its group and ``umask``)."""
        return subprocess.run([self.python, str(self.code / "bin" / command), *args],
                              env=self.env(who, env), user=self.uid[who], group=self.gid,
                              extra_groups=[self.gid], umask=umask, capture_output=True,
                              text=True, input=input, timeout=timeout, cwd=str(self.root))

    def start_worker(self, who: str, *categories: str, env: dict | None = None,
                     umask: int = 0o002) -> str:
        """Start a detached worker as ``who``; return its name (stopped at the end)."""
        result = self.run(who, "start_worker", *categories, env=env, umask=umask)
        assert result.returncode == 0, result.stderr
        name = result.stdout.strip()
        self.worker_pids.append(int(name.rsplit(".", 1)[1]))
        return name

    def as_user(self, who: str, function, *args) -> None:
        """Call ``function(*args)`` in a child process running as ``who`` (umask 002)."""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.setgroups([self.gid])
                os.setgid(self.gid)
                os.setuid(self.uid[who])
                os.umask(0o002)
                function(*args)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"{function} failed as {who}"

    def close(self) -> None:
        import shutil

        stop_workers(self.home / "workers", self.worker_pids)
        self.end_processes()
        for login in self.names.values():
            subprocess.run(["userdel", login], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _team_python() -> str | None:
    """A Python every user may run that has the dependencies (not root's own)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(candidate):
            continue
        probe = subprocess.run([candidate, "-c", "import psutil, yaml"], capture_output=True,
                               user="nobody" if _has_nobody() else None)
        if probe.returncode == 0:
            return candidate
    return None


def _has_nobody() -> bool:
    import pwd

    try:
        pwd.getpwnam("nobody")
        return True
    except KeyError:
        return False


@pytest.fixture
def team():
    """Two real users sharing a jar (skips, loudly, unless root with useradd)."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("TWO-USER TEST SKIPPED: needs root and useradd (CI runs it as root)")
    python = _team_python()
    if python is None:
        pytest.skip("TWO-USER TEST SKIPPED: no system Python with psutil and yaml "
                    "(apt-get install python3-psutil python3-yaml)")
    root = Path(tempfile.mkdtemp(prefix="jjteam-", dir="/tmp"))
    root.chmod(0o755)
    made = Team(root, python, os.urandom(3).hex())
    try:
        yield made
    finally:
        made.close()
