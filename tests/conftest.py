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
        if not self.worker_pids:
            return
        self.workers_dir.mkdir(parents=True, exist_ok=True)
        (self.workers_dir / "STOP_ALL").touch()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(pid_alive(p) for p in self.worker_pids):
            time.sleep(0.05)
        for pid in self.worker_pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.worker_pids.clear()


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
