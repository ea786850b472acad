"""Bad input: one clear line (never a traceback) or a clean skip; nothing lost or half-written.

Complements ``test_config.py`` and ``test_submit.py`` (which check
``submit_job`` alone) by running *every* command against bad configuration,
and by feeding the worker files no submitter would make: symbolic links,
directories, dot-files, unreadable, non-executable and empty files, names
with spaces, control characters and bytes that are not UTF-8, and jobs that
daemonize or close their standard streams.

We run as root, so "unreadable" and "not writable" are checked with the
permission-bypassing capabilities dropped (``setpriv``): root then obeys file
modes like any other user.  The full-disk case mounts a small tmpfs; both
skip cleanly where that is not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, one_line_error, pid_alive, wait_for

#: Commands that read the configuration, with harmless arguments.
COMMANDS = [("submit_job", ["true"]), ("start_worker", []), ("check_workers", ["--dry-run"]),
            ("recover_jobs", []), ("system_status", []), ("unique_job_name", [])]

#: Drop the capabilities that let root ignore file modes.
NO_DAC = "-dac_override,-dac_read_search"
SETPRIV = shutil.which("setpriv")


def files_under(path: Path) -> list[str]:
    """Every file under ``path`` but the workers' hidden lock files (``check_workers``'s)."""
    if not path.exists():
        return []
    found = (os.path.relpath(os.path.join(d, f), path) for d, _s, files in os.walk(path)
             for f in files)
    return sorted(f for f in found if not (f.startswith("workers/") and
                                           os.path.basename(f).startswith(".")))


def give_away(path: Path) -> None:
    """Make ``path`` belong to nobody (only root can; others skip the test)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: giving a file to another user, then dropping DAC override")
    os.chown(path, 65534, 65534)


def run_without_dac(jar, command: str, *args: str, env: dict | None = None):
    """Run ``bin/command`` as root that obeys file modes (no DAC override)."""
    if not SETPRIV:
        pytest.skip("setpriv is not installed: cannot drop root's file-mode override")
    argv = [SETPRIV, f"--inh-caps={NO_DAC}", f"--bounding-set={NO_DAC}", str(BIN / command),
            *args]
    result = subprocess.run(argv, env={**jar.env, **(env or {})}, capture_output=True,
                            text=True, timeout=60)
    if "setpriv:" in result.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {result.stderr.strip()}")
    return result


# -- configuration --------------------------------------------------------------------------

BAD_VALUES = [
    ("JJ_HOME", "relative/jar"), ("JJ_HOME", "~nosuchuser/jar"), ("JJ_WORKER_HOME", "workers"),
    ("JJ_PAUSE_TIME", "-1"), ("JJ_PAUSE_TIME", "soon"), ("JJ_PAUSE_TIME", "nan"),
    ("JJ_PAUSE_TIME", "1e400"), ("JJ_MAX_WORKERS", "x"), ("JJ_MAX_WORKERS", "-2"),
    ("JJ_MAX_WORKERS", "2.5"), ("JJ_CATEGORIES", "ok ../up"), ("JJ_CATEGORIES", ".hidden"),
    ("JJ_NODE", "a/b"), ("JJ_NODE", ".."), ("JJ_NODE", "x" * 300),
    ("JJ_MAX_RECOVERIES", "many"), ("JJ_KILL_GRACE", "-0.5"), ("JJ_HEARTBEAT", "inf"),
    ("JJ_ALLOW_ROOT", "maybe"), ("JJ_CONFIG_FILE", "relative.ini"),
]


@pytest.mark.parametrize("name,value", BAD_VALUES)
def test_every_command_rejects_a_bad_parameter_value(jar, name, value):
    for command, args in COMMANDS:
        result = jar.run(command, *args, env={name: value})
        one_line_error(result, name)
        assert result.stdout == ""
    assert not jar.home.exists(), "a command created the jar despite bad configuration"
    assert not (jar.root / "relative").exists()


CONFIG_FILES = {
    "malformed": b"[Job Jar]\nJJ_PAUSE_TIME = 1\nthis line is not a setting\n",
    "no section": b"JJ_PAUSE_TIME: 1\n",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "not utf-8": b"[Job Jar]\nJJ_NODE: caf\xe9\n",
    "bad value": b"[Job Jar]\nJJ_MAX_WORKERS: lots\n",
}


@pytest.mark.parametrize("kind", sorted(CONFIG_FILES))
def test_bad_config_files_for_every_command(jar, kind):
    bad = jar.root / "config.ini"
    bad.write_bytes(CONFIG_FILES[kind])
    for command, args in COMMANDS:
        line = one_line_error(jar.run(command, *args, env={"JJ_CONFIG_FILE": str(bad)}))
        assert str(bad) in line, line
    assert not jar.home.exists()


def test_config_file_that_is_a_directory_or_unreadable(jar):
    as_dir = jar.root / "dir.ini"
    as_dir.mkdir()
    for command, args in COMMANDS:
        one_line_error(jar.run(command, *args, env={"JJ_CONFIG_FILE": str(as_dir)}), str(as_dir))
    locked = jar.root / "locked.ini"
    locked.write_text("[Job Jar]\nJJ_PAUSE_TIME: 1\n")
    give_away(locked)
    locked.chmod(0o600)
    for command, args in COMMANDS[:3]:
        result = run_without_dac(jar, command, *args, env={"JJ_CONFIG_FILE": str(locked)})
        one_line_error(result, str(locked), "cannot read")
    assert not jar.home.exists()


# -- categories, identifiers, priorities, files ---------------------------------------------

BAD_WORDS = ["", "a/b", "/", "..", "../../escape", ".hidden", "tab\there", "bell\x07", "new\nline",
             "x" * 300, "comma,separated"]


def test_bad_categories_and_identifiers_everywhere(jar):
    import jobjar

    for word in BAD_WORDS:
        one_line_error(jar.run("submit_job", "-c", word, "true"), "category")
        one_line_error(jar.run("submit_job", "-i", word, "true"), "identifier")
        one_line_error(jar.run("unique_job_name", "-i", word), "identifier")
        one_line_error(jar.run("start_worker", word), "category")
        for kwargs in ({"category": word}, {"id": word}):
            with pytest.raises(jobjar.JobJarError):
                jobjar.submit_job("true", **kwargs)
    assert files_under(jar.home) == []
    assert not (jar.root / "escape").exists() and not Path("/escape").exists()
    assert not jar.workers_dir.exists() or os.listdir(jar.workers_dir) == []


@pytest.mark.parametrize("priority", ["ten", "1.5", "", "1e3", "0x10", "--", str(10**10),
                                      "-" + "9" * 400])
def test_bad_priorities(jar, priority):
    one_line_error(jar.run("submit_job", "-p", priority, "true"))
    one_line_error(jar.run("unique_job_name", "-p", priority))
    assert files_under(jar.home) == []


def test_absurd_priority_in_a_hand_made_name_is_clamped_and_runs(jar):
    huge = jar.submit_by_hand("huge." + "9" * 200, f"#!/bin/sh\ntouch {jar.root}/huge\n")
    low = jar.submit_by_hand("low.-" + "9" * 200, f"#!/bin/sh\ntouch {jar.root}/low\n")
    jar.start_worker()
    jar.wait_completed(2)
    assert jar.record(huge.name)["priority"] == 10**9
    assert jar.record(low.name)["priority"] == -(10**9)


@pytest.mark.parametrize("kind", ["missing", "directory", "not executable", "fifo", "device",
                                  "dangling link"])
def test_submit_file_that_cannot_be_a_job(jar, kind):
    path = jar.root / "thing"
    if kind == "directory":
        path.mkdir()
    elif kind == "not executable":
        path.write_text("#!/bin/sh\ntrue\n")
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would block forever: it must not be opened
    elif kind == "device":
        path = Path("/dev/null")
    elif kind == "dangling link":
        path.symlink_to(jar.root / "nowhere")
    result = jar.run("submit_job", "-f", str(path), timeout=20)
    one_line_error(result, str(path))
    assert files_under(jar.home) == []


# -- the jar itself ---------------------------------------------------------------------------

def test_jar_that_is_not_writable(jar):
    """With file modes obeyed, a jar owned by someone else is a clear error, not a mess."""
    jar.run("check_workers", "--dry-run", check=True)
    for path in [jar.home, *jar.home.iterdir()]:
        give_away(path)
    result = run_without_dac(jar, "submit_job", "true")
    one_line_error(result, "submit_job: error:")
    assert "ermission denied" in result.stderr
    one_line_error(run_without_dac(jar, "start_worker"), "start_worker: error:")
    one_line_error(run_without_dac(jar, "submit_job", "-c", "newcat", "true"))
    assert files_under(jar.home) == []
    assert not jar.path("unclaimed", "newcat").exists()


def test_read_only_jar(jar, small_disk):
    jar.run("check_workers", "--dry-run", check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for command, args in [("submit_job", ["true"]), ("submit_job", ["-c", "new", "true"]),
                          ("start_worker", []), ("unique_job_name", [])]:
        result = jar.run(command, *args)
        if command == "unique_job_name":  # only prints a name; the cp that follows will fail
            continue
        one_line_error(result, "Read-only file system")
    assert files_under(jar.home) == []


def test_disk_fills_up_during_submission(jar, small_disk):
    """Every submission either lands whole or fails in one line, leaving limbo clean."""
    import jobjar
    from jobjar.errors import JobJarError

    jar.run("check_workers", "--dry-run", check=True)
    big = jar.root / "big_job"
    big.write_bytes(b"#!/bin/sh\nexit 0\n" + b"#" * (2 * 1024 * 1024))
    big.chmod(0o755)
    one_line_error(jar.run("submit_job", "-f", str(big)), "disk is full")
    assert files_under(jar.home) == []

    command = "echo " + "x" * 20000
    submitted = []
    with pytest.raises(JobJarError, match="full|space"):
        for _ in range(200):  # 1 MiB holds far fewer than 200 of these
            submitted.append(jobjar.submit_job(command))
    assert submitted, "not even one job fitted"
    assert os.listdir(jar.path("limbo")) == []
    queued = sorted(os.listdir(jar.path("unclaimed")))
    assert queued == sorted(submitted)
    for name in queued:  # whole, not truncated
        assert jar.path("unclaimed", name).read_text().rstrip().endswith(command)
    small = jar.run("submit_job", "true")  # may still fit in the last few blocks
    if small.returncode != 0:
        one_line_error(small, "submit_job: error:")
    assert os.listdir(jar.path("limbo")) == []


# -- files placed in unclaimed/ by hand --------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as src:
        fields = src.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_files_that_are_not_jobs_are_set_aside_never_run(jar):
    marker = jar.root / "MARKER"
    outside = jar.root / "outside"
    outside.mkdir()
    evil = outside / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    jar.run("check_workers", "--dry-run", check=True)
    unclaimed = jar.path("unclaimed")
    cat = unclaimed / "cat"
    cat.mkdir()
    (unclaimed / "link.9").symlink_to(evil)
    (cat / "catlink.9").symlink_to(evil)
    (unclaimed / "dirlink.9").symlink_to(outside)
    (cat / "subdir.9").mkdir()
    (cat / "subdir.9" / "inner").write_text("#!/bin/sh\ntouch {marker}\n")
    for dotfile in (unclaimed / ".partial.9", cat / ".rsync-tmp.9"):
        dotfile.write_text(f"#!/bin/sh\ntouch {marker}\n")
        dotfile.chmod(0o755)
    (unclaimed / "notexec.9").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (cat / "empty.9").touch()
    (cat / "empty.9").chmod(0o755)
    weird = os.fsencode(unclaimed) + b"/not-utf8-\xff\xfe.9"
    with open(weird, "wb") as out:
        out.write(b"#!/bin/sh\ntrue\n")  # not executable: rejected under a non-UTF-8 name
    long_name = "L" * 253
    (unclaimed / long_name).write_text(f"#!/bin/sh\ntouch {marker}\n")
    (unclaimed / long_name).chmod(0o755)
    good = jar.submit_by_hand("good.0", f"#!/bin/sh\ntouch {jar.root}/good\n")

    worker = jar.start_worker("cat")
    pid = int(worker.rsplit(".", 1)[1])
    wait_for(lambda: (jar.root / "good").exists() and len(os.listdir(jar.path("rejected"))) == 8,
             message="good job run, eight files set aside")
    jar.wait_completed(1)
    assert jar.completed() == [good.name]
    assert not marker.exists(), "a symbolic link's target or a non-job was run"
    assert evil.exists() and (outside / "evil").read_text().startswith("#!")
    rejected = jar.path("rejected")
    assert sorted(os.listdir(rejected)) == sorted(
        ["link.9", "catlink.9", "dirlink.9", "subdir.9", "notexec.9", "empty.9",
         os.fsdecode(b"not-utf8-\xff\xfe.9"), long_name])
    assert (rejected / "link.9").is_symlink() and os.readlink(rejected / "link.9") == str(evil)
    reasons = {n: (jar.record(n) or {}).get("reason") for n in os.listdir(rejected)}
    assert "symbolic link" in reasons["link.9"] and "symbolic link" in reasons["dirlink.9"]
    assert "regular file" in reasons["subdir.9"]
    assert "executable" in reasons["notexec.9"] and "empty" in reasons["empty.9"]
    assert reasons[long_name] is None  # no room for its record; the worker logs why
    assert "longer than" in (jar.workers_dir / worker / "log").read_text()
    assert (unclaimed / ".partial.9").exists() and (cat / ".rsync-tmp.9").exists()

    status = subprocess.run([str(BIN / "system_status")], env=jar.env, capture_output=True)
    assert status.returncode == 0 and b"Traceback" not in status.stderr, status.stderr
    assert b"8 rejected" in status.stdout
    for name in ("link.9", "subdir.9", "notexec.9", "empty.9"):
        assert f"rejected: {name}: ".encode() in status.stdout
    assert b"rejected: not-utf8-\\xff\\xfe.9: not executable" in status.stdout  # escaped
    # dot-files are never claimed and stay where they are, but the operator sees them
    for dotfile in (b"unclaimed/.partial.9", b"unclaimed/cat/.rsync-tmp.9"):
        assert b"hidden: " + dotfile + b" (" in status.stdout
    hidden = json.loads(subprocess.run([str(BIN / "system_status"), "--json"], env=jar.env,
                                       capture_output=True, check=True).stdout)["jobs"]["hidden"]
    assert sorted(h["name"] for h in hidden) == ["unclaimed/.partial.9",
                                                 "unclaimed/cat/.rsync-tmp.9"]

    # The dot-files stay, and the worker neither crashes nor spins on them.
    assert pid_alive(pid)
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(2.0)  # a measuring window, not a wait for a condition
    used = cpu_seconds(pid) - before
    assert used < 0.5 * (time.monotonic() - start), f"idle worker used {used:.2f} s of CPU"
    assert pid_alive(pid)
    assert (unclaimed / ".partial.9").exists() and (cat / ".rsync-tmp.9").exists()


def test_category_directory_that_is_a_symbolic_link_is_never_followed(jar):
    marker = jar.root / "MARKER"
    outside = jar.root / "outside"
    outside.mkdir()
    evil = outside / "evil.5"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    jar.run("check_workers", "--dry-run", check=True)
    jar.path("unclaimed", "cat").symlink_to(outside)
    good = jar.submit_by_hand("good.0", f"#!/bin/sh\ntouch {jar.root}/good\n")
    jar.start_worker("cat")
    jar.wait_completed(1)
    assert jar.completed() == [good.name]
    assert evil.exists(), "a file was taken from outside the jar"
    assert not marker.exists()


def test_unreadable_job_is_rejected_by_a_worker_that_obeys_file_modes(jar):
    jar.run("check_workers", "--dry-run", check=True)
    path = jar.submit_by_hand("unreadable.0", f"#!/bin/sh\ntouch {jar.root}/ran\n")
    give_away(path)
    path.chmod(0o101)  # others may execute, not read: a script cannot run
    good = jar.submit_by_hand("good.-1", f"#!/bin/sh\ntouch {jar.root}/good\n")
    result = run_without_dac(jar, "start_worker")
    assert result.returncode == 0, result.stderr
    jar.worker_pids.append(int(result.stdout.strip().rsplit(".", 1)[1]))
    wait_for(lambda: (jar.root / "good").exists(), message="good job ran")
    wait_for(lambda: os.listdir(jar.path("rejected")), message="unreadable set aside")
    assert os.listdir(jar.path("rejected")) == ["unreadable.0"]
    assert "readable" in jar.record("unreadable.0")["reason"]
    status = jar.run("system_status", check=True).stdout
    assert "rejected: unreadable.0: not readable" in status
    assert not (jar.root / "ran").exists()
    assert jar.wait_completed(1) == [good.name]


# -- names and odd jobs -----------------------------------------------------------------------

def test_names_with_spaces_and_non_ascii_run_fine(jar):
    seen = jar.root / "seen"
    body = f'#!/bin/sh\nprintf "%s|" "$JJ_JOB_NAME" >> "{seen}"\necho "out:$JJ_JOB_NAME"\n'
    names = ["my job.3", "  leading and trailing  ", "naïve 日本語 job.-2", "tab\there",
             "new\nline", "quote'\"$(touch x)`.1", "emoji 🎉"]
    for index, name in enumerate(names):
        jar.submit_by_hand(name, body, category="cat" if index % 2 else None)
    raw = os.fsencode(jar.path("unclaimed")) + b"/latin1-caf\xe9"
    with open(raw, "wb") as out:
        out.write(body.encode())
    os.chmod(raw, 0o755)
    names.append(os.fsdecode(b"latin1-caf\xe9"))
    jar.start_worker("cat")
    wait_for(lambda: sorted(jar.completed()) == sorted(names), message="all odd names done")
    ran = seen.read_bytes().split(b"|")[:-1]
    assert sorted(ran) == sorted(os.fsencode(n) for n in names)
    for name in names:
        record = jar.record(name)
        assert record["status"] == "succeeded" and record["name"] == name, record
        out = jar.path("output", f"{name}.out").read_bytes()
        assert out == b"out:" + os.fsencode(name) + b"\n"
    assert not (jar.workers_dir / "x").exists()
    assert "Traceback" not in jar.run("system_status").stderr


def test_daemonizing_and_stream_closing_jobs_do_not_hang_the_worker(jar):
    pids = jar.root / "daemon.pids"
    jar.submit_by_hand("daemon.9", f"#!/bin/sh\nsleep 300 &\necho $! >> {pids}\n"
                                   f"setsid sh -c 'echo $$ >> {pids}; exec sleep 300' &\n"
                                   "echo started\n")
    jar.submit_by_hand("closer.8", f"#!/bin/sh\nexec 0<&- 1>&- 2>&-\ntouch {jar.root}/closed\n")
    jar.submit_by_hand("after.0", f"#!/bin/sh\ntouch {jar.root}/after\n")
    try:
        worker = jar.start_worker()
        jar.wait_completed(3, timeout=30)
        assert jar.record("daemon.9")["status"] == "succeeded"
        assert jar.record("closer.8")["status"] == "succeeded"
        assert (jar.root / "closed").exists() and (jar.root / "after").exists()
        assert pid_alive(int(worker.rsplit(".", 1)[1]))
        wait_for(lambda: len(pids.read_text().split()) == 2, message="daemons started")
    finally:
        if pids.exists():
            for pid in pids.read_text().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass


def test_status_survives_a_corrupt_record(jar):
    name = jar.submit("true")
    jar.start_worker()
    jar.wait_completed(1)
    record = jar.path("results", f"{name}.yaml")
    record.write_bytes(b"\xff\x00 not yaml: [")
    status = jar.run("system_status")
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert stat.S_ISREG(record.stat().st_mode)
