"""Running one job: environment, output files, the wait, and the kill path.

The job runs with no arguments in its scratch directory, in a session and
process group of its own, with standard input from ``/dev/null`` and its
output going straight to files (the worker never reads it, so its memory
stays flat however much a job prints).  While it runs, the worker wakes at
least once a second to refresh its heartbeat and to look for a cancel
request; a timeout or a cancel sends SIGTERM to the whole process group (and
to any descendant that left it), then SIGKILL after ``JJ_KILL_GRACE``.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: How often a running job's worker looks for cancel requests.
POLL = 1.0


@dataclass
class Outcome:
    """What happened when a job ran."""

    started: float
    finished: float
    exit_code: int | None
    signal: int | None
    status: str  # succeeded, failed, timed-out, cancelled
    reason: str | None = None


def _open_output(path: str, append: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    return os.open(path, flags, 0o666)


def _redirect_in_child(streams: list[tuple[str, bool, int]]):
    """Open user-chosen output paths in the child, with the job's own rights."""

    def redirect() -> None:
        for path, append, target in streams:
            fd = _open_output(path, append)
            os.dup2(fd, target)
            os.close(fd)

    return redirect


_DEVNULL: list[int] = []


def _devnull() -> int:
    """One descriptor of ``/dev/null`` for every job's standard input (not one open per job)."""
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEVNULL[0]


def spawn(job: Path, scratch: Path, env: dict, out: tuple[str, bool, bool],
          err: tuple[str, bool, bool]) -> subprocess.Popen:
    """Start the job.  ``out``/``err`` are ``(path, opened_by_worker, append)``."""
    fds = []
    try:
        for path, ours, append in (out, err):
            fds.append(_open_output(path, append) if ours else subprocess.DEVNULL)
        child = [(path, append, target) for target, (path, ours, append)
                 in ((1, out), (2, err)) if not ours]
        preexec = _redirect_in_child(child) if child else None
        argv = [str(job)]
        for attempt in (1, 2):
            try:
                return subprocess.Popen(argv, cwd=scratch, env=env, stdin=_devnull(),
                                        stdout=fds[0], stderr=fds[1], start_new_session=True,
                                        close_fds=True, preexec_fn=preexec)
            except OSError as exc:
                # A script without a "#!" line: run it with sh, as shells do.
                if exc.errno != errno.ENOEXEC or attempt == 2:
                    raise
                argv = ["/bin/sh", str(job)]
        raise AssertionError("unreachable")
    finally:
        for fd in fds:
            if isinstance(fd, int) and fd >= 0:
                os.close(fd)


def keep_output(spare: str, final: str, group: int) -> str | None:
    """After a job: give its output in ``spare`` its own name, or keep the spare.

    Empty output is not kept (the spare is reused by the next job) unless a
    process of the job's group still runs and may write later: its output
    must land under this job's name, not the next one's.  Returns the path
    the output is in, or ``None`` when there was none.
    """
    try:
        empty = os.stat(spare).st_size == 0
    except FileNotFoundError:
        return None
    if empty and not _group_alive(group):
        return None
    os.rename(spare, final)
    return final


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone's process is in it
        return True
    return True


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []


def _signal_all(proc: subprocess.Popen, extra: list, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        pass
    for child in extra:
        try:
            child.send_signal(sig)
        except Exception:
            pass


class Waiter:
    """Wait for a process with exact wake-up (a pidfd) and a bounded timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        try:
            self.fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.fd = -1

    def wait(self, timeout: float) -> bool:
        """True once the process has exited (and been reaped)."""
        if self.fd >= 0:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
            if not ready:
                return False
            self.proc.wait()
            return True
        try:
            self.proc.wait(timeout=max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def supervise(proc: subprocess.Popen, timeout: float | None, kill_grace: float,
              cancelled: Callable[[], bool], beat: Callable[[], None]) -> tuple[str | None, float]:
    """Wait for the job; kill it on timeout or cancel.  Returns (why killed, end time)."""
    waiter = Waiter(proc)
    start = time.monotonic()
    deadline = start + timeout if timeout else float("inf")
    why = None
    try:
        while True:
            now = time.monotonic()
            if waiter.wait(min(POLL, deadline - now)):
                break
            beat()
            if time.monotonic() >= deadline:
                why = "timed-out"
            elif cancelled():
                why = "cancelled"
            if why:
                _kill(proc, waiter, kill_grace)
                break
        return why, time.time()
    finally:
        waiter.close()


def _kill(proc: subprocess.Popen, waiter: Waiter, grace: float) -> None:
    """SIGTERM to everything, SIGKILL to whatever is left after ``grace``.

    A shell leader dies at once on SIGTERM while its children may still be
    cleaning up, so the grace lasts until every process we signalled is gone,
    not only the leader.
    """
    deadline = time.monotonic() + grace
    extra = _descendants(proc.pid)
    _signal_all(proc, extra, signal.SIGTERM)
    if not waiter.wait(grace):  # the leader is still there: its pid is still its own
        extra += _descendants(proc.pid)
    while time.monotonic() < deadline and _lingering(extra):
        time.sleep(0.05)
    _signal_all(proc, extra, signal.SIGKILL)
    if proc.returncode is None:
        proc.wait()


def _lingering(processes: list) -> bool:
    """True while any of these (psutil) processes runs; zombies count as gone."""
    import psutil

    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            pass
    return False


def outcome(proc: subprocess.Popen, started: float, finished: float, why: str | None) -> Outcome:
    """Turn a finished process into an ``Outcome``."""
    code = proc.returncode
    exit_code, sig = (code, None) if code >= 0 else (None, -code)
    if why:
        status = why
    else:
        status = "succeeded" if code == 0 else "failed"
    reason = None
    if sig is not None and not why:
        reason = f"killed by signal {sig} ({signal.Signals(sig).name})" if sig in \
            signal.Signals._value2member_map_ else f"killed by signal {sig}"
    return Outcome(started, finished, exit_code, sig, status, reason)
