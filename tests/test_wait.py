"""``wait_jobs`` and ``jobjar.wait``: exit statuses, records, and the live
progress bar on a (pseudo-)terminal."""

from __future__ import annotations

import os
import pty
import select
import threading
import time

import pytest

from conftest import BIN, wait_for


def test_wait_jobs_exit_statuses(jar):
    good = jar.submit("true")
    bad = jar.submit("false")
    gate = jar.root / "gate"
    blocked = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    later = jar.submit("--after", blocked, "true")
    jar.start_worker()
    assert jar.run("wait_jobs", good).returncode == 0
    result = jar.run("wait_jobs", good, bad)
    assert result.returncode == 1 and result.stdout == f"{bad}: failed\n"
    timed = jar.run("wait_jobs", "--timeout", "0.3", blocked)
    assert timed.returncode == 2 and "1 of 1 jobs still in the jar" in timed.stderr
    assert jar.run("wait_jobs", "--timeout", "0.3").returncode == 2  # blocked and later
    gate.touch()
    assert jar.run("wait_jobs").returncode == 0  # everything in the jar now
    assert jar.record(later)["status"] == "succeeded"
    assert jar.run("wait_jobs", "--no-progress").returncode == 0  # an empty jar: nothing to do
    missing = jar.run("wait_jobs", good, "no-such-job")
    assert missing.returncode == 1 and "no-such-job" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    for bad_timeout in ("soon", "-1", "nan"):
        result = jar.run("wait_jobs", "--timeout", bad_timeout, good)
        assert result.returncode == 1 and "--timeout" in result.stderr, bad_timeout


def test_python_wait_returns_the_records(jar):
    import jobjar
    from jobjar.jobs import WaitTimeout

    good = jar.submit("true")
    bad = jar.submit("--timeout", "0.2", "sleep 5")
    idle = jar.submit("-c", "NOBODY", "true")
    with pytest.raises(WaitTimeout):
        jobjar.wait([idle], timeout=0.2)
    with pytest.raises(WaitTimeout):
        jobjar.wait(None, timeout=0.2)  # None: everything in the jar, idle included
    assert jobjar.wait([], timeout=0.2) == []  # an empty list: nothing to wait for
    jar.start_worker()
    records = jobjar.wait([bad, good, bad])
    assert [(r["name"], r["status"]) for r in records] == [(bad, "timed-out"),
                                                           (good, "succeeded")]
    assert jobjar.wait(good)[0]["status"] == "succeeded"  # one name as a plain string
    assert jobjar.cancel_job([idle]) == [(idle, "cancelled")]  # a list, as arrays return
    assert jobjar.wait([idle])[0]["status"] == "cancelled"


def test_wait_sees_a_cancel_of_a_queued_job_as_cancelled(jar):
    import jobjar

    names = [jobjar.submit_job("true", category="NOBODY") for _ in range(50)]
    found = []
    waiter = threading.Thread(target=lambda: found.extend(jobjar.wait(names)))
    waiter.start()  # waiting while the jobs move to completed/ and get their records
    jar.run("cancel_job", "-c", "NOBODY", check=True)
    waiter.join(60)
    assert len(found) == 50 and {r["status"] for r in found} == {"cancelled"}


def read_until(fd: int, wanted: bytes, timeout: float = 60) -> bytes:
    """Read a pseudo-terminal until ``wanted`` shows up (or the deadline passes)."""
    output = b""
    deadline = time.monotonic() + timeout
    while wanted not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    return output


def run_on_a_terminal(jar, *args: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: wait_jobs with a terminal on all three streams
        try:
            os.environ.clear()
            os.environ.update(jar.env)
            os.execv(str(BIN / "wait_jobs"), [str(BIN / "wait_jobs"), *args])
        finally:
            os._exit(127)
    return pid, fd


def test_wait_jobs_progress_bar_on_a_terminal(jar):
    gate = jar.root / "gate"
    first = jar.submit("true")
    bad = jar.submit("false")
    held = jar.submit(f"while [ ! -e {gate} ]; do sleep 0.05; done")
    jar.start_worker()
    pid, fd = run_on_a_terminal(jar, first, bad, held)
    try:
        partial = read_until(fd, b"2/3 done, 1 failed, 1 running")
        assert b"2/3 done, 1 failed, 1 running" in partial, partial
        assert b"elapsed" in partial and b"left" in partial and b"[####" in partial
        gate.touch()
        rest = read_until(fd, b"3/3 done")
        text = (partial + rest).decode()
        assert "3/3 done, 1 failed, 0 running" in text and "\r[" in text
    finally:
        _, code = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(code) == 1


def test_no_bar_off_a_terminal_unless_asked(jar):
    name = jar.submit("true")
    jar.start_worker()
    wait_for(lambda: jar.record(name) and jar.record(name)["status"] == "succeeded")
    plain = jar.run("wait_jobs", name)
    assert plain.returncode == 0 and plain.stderr == "" and plain.stdout == ""
    forced = jar.run("wait_jobs", "--progress", name)
    assert "1/1 done, 0 failed" in forced.stderr
    pid, fd = run_on_a_terminal(jar, "--no-progress", name)
    try:
        text = read_until(fd, b"done", timeout=5)
    finally:
        _, code = os.waitpid(pid, 0)
        os.close(fd)
    assert b"done" not in text and os.waitstatus_to_exitcode(code) == 0
