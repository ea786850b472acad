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
from typing import Callable, NamedTuple, Union

from . import files, states

#: How often a running job's worker looks for cancel requests.
POLL = 1.0


@dataclass
class Outcome:
    """What happened when a job ran."""

    started: float
    finished: float
    exit_code: int | None
    signal: int | None
    status: str  # states.SUCCEEDED, FAILED, TIMED_OUT or CANCELLED
    reason: str | None = None
    #: the kernel's resource usage of the reaped job (``usage``), ``None`` if not known
    usage: Usage | None = None


class Usage(NamedTuple):
    """What the kernel reported when the job's process was reaped (``wait4``'s rusage).

    The figures cover the job's own process and every descendant that the
    kernel had already counted into it: a child is added to its parent's
    figures when the parent waits for it, so a shell's finished commands
    count, while a process that outlived its parent (re-parented to the
    worker, which is a subreaper, or to ``init``) does not.  ``max_rss_kb``
    is the peak resident set of the largest single process among them, not
    a sum: two 100 MB processes in turn or at once both show about 100 MB;
    and it counts from the process's creation as a copy of the worker, so
    even the smallest job shows about the worker's own size.
    """

    max_rss_kb: int
    cpu_user_s: float
    cpu_system_s: float

    @classmethod
    def of(cls, rusage) -> Usage:
        """From a ``resource.struct_rusage`` (Linux gives ``ru_maxrss`` in KiB)."""
        return cls(int(rusage.ru_maxrss), round(rusage.ru_utime, 6), round(rusage.ru_stime, 6))


class Stream(NamedTuple):
    """Where one output stream of a job goes.

    ``opened_by_worker``: the worker opens ``path`` (a file in the jar's
    ``output/``) and hands the descriptor on; otherwise the job's own
    process opens it, with its own rights.  ``append``: add to an existing
    file; a stream the worker opens without ``append`` is a new file,
    created with ``O_EXCL`` (never an existing name, never through a link).
    """

    path: str
    opened_by_worker: bool
    append: bool
    #: an empty file an earlier job of this worker left (``reuse_ok``): emptied and reused
    reuse: bool = False


#: An existing output file of the job, appended to: never through a link, never a fifo.
_APPEND = files.APPEND | os.O_CREAT | os.O_NONBLOCK


def _open_output(path: str, append: bool, reuse: bool = False) -> int:
    """Open an output file in the jar for the worker to hand to a job.

    A new file is created with ``O_EXCL`` (a name someone planted makes the
    open fail); an appended or reused one is opened with ``O_NOFOLLOW`` and
    must be a regular file (a planted fifo must not block the worker); a
    reused one is emptied first.
    """
    fd = os.open(path, _APPEND if append or reuse else files.CREATE, 0o666)
    if (append or reuse) and not _is_regular(fd):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    if reuse:
        os.ftruncate(fd, 0)
    return fd


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def _redirect_in_child(streams: list[tuple[str, bool, int]], shared: bool = False):
    """Open user-chosen output paths in the child, with the job's own rights.

    ``shared``: standard error goes where standard output does.
    """

    def redirect() -> None:
        for path, append, target in streams:
            fd = _open_output(path, append)
            os.dup2(fd, target)
            os.close(fd)
        if shared:
            os.dup2(1, 2)

    return redirect


_DEVNULL: list[int] = []


def _devnull() -> int:
    """One descriptor of ``/dev/null`` for every job's standard input (not one open per job)."""
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEVNULL[0]


class Child:
    """A job started by ``posix_spawn``: ``Popen``'s ``pid``, ``returncode`` and ``wait``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.usage: Usage | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Reap the process (``-N`` for signal N, as ``Popen``); may raise ``TimeoutExpired``.

        ``wait4`` rather than ``waitpid``: the same reaping, with the job's
        resource usage (``usage``) for its record, at no extra system call.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            pid, status, rusage = os.wait4(self.pid, 0 if deadline is None else os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                self.usage = Usage.of(rusage)
            elif time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            else:
                time.sleep(0.01)
        return self.returncode


class _Popen(subprocess.Popen):
    """``Popen`` that reaps with ``wait4``, keeping the job's ``usage`` as ``Child`` does."""

    usage: Usage | None = None

    def _try_wait(self, wait_flags: int):  # noqa: ANN202 - Popen's own hook
        try:
            pid, status, rusage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:  # Popen's own answer when the child is already gone
            return self.pid, 0
        if pid:
            self.usage = Usage.of(rusage)
        return pid, status


#: A started job, whichever way it was started.
Process = Union[Child, subprocess.Popen]

#: Signals Python ignores that a job must get back at their defaults (as ``Popen`` does).
_DEFAULT_SIGNALS = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, n))
#: The worker's own working directory, to come back to after starting a job in its scratch.
_HOME: list[int] = []


def _posix_spawn(argv: list[str], scratch: Path, env: dict, streams,
                 program: str | None = None) -> Child:
    """Start a job with ``posix_spawn``, which costs less than ``Popen`` per job.

    ``Popen`` encodes the environment and prepares the child in Python; this
    does it in C.  There is no "working directory" action, so the worker
    changes into the scratch directory around the call (it has no threads).
    User-chosen output files are opened by the child, with its rights.
    """
    actions = [(os.POSIX_SPAWN_DUP2, _devnull(), 0)]
    for target, (kind, value, append) in ((1, streams[0]), (2, streams[1])):
        if kind in ("fd", "dup"):  # "dup": the descriptor the job already has open
            actions.append((os.POSIX_SPAWN_DUP2, value, target))
        else:
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
            actions.append((os.POSIX_SPAWN_OPEN, target, value, flags, 0o666))
    if not _HOME:
        _HOME.append(os.open(".", os.O_RDONLY | os.O_CLOEXEC))
    # Into the scratch directory itself, never through a link put in its place.
    where = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchdir(where)
        return Child(os.posix_spawn(program or argv[0], argv, env, file_actions=actions,
                                    setsid=True, setsigdef=_DEFAULT_SIGNALS))
    finally:
        os.close(where)
        os.fchdir(_HOME[0])


def seal_descriptors() -> None:
    """Mark every inherited descriptor above 2 close-on-exec.

    ``posix_spawn`` does not close descriptors the way ``Popen(close_fds=True)``
    does, so one that the worker inherited (a pipe of the shell or test that
    started it) would leak into every job, and a job that leaves a child
    behind would then hold that pipe open.
    """
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def _popen(argv: list[str], scratch: Path, env: dict, streams) -> subprocess.Popen:
    """Start a job with ``Popen`` (where ``posix_spawn`` cannot do it)."""
    fds = [value if kind == "fd" else subprocess.DEVNULL for kind, value, _ in streams]
    child = [(value, append, target) for target, (kind, value, append)
             in ((1, streams[0]), (2, streams[1])) if kind == "path"]
    shared = streams[1][0] == "dup"
    preexec = _redirect_in_child(child, shared) if child else None
    return _Popen(argv, cwd=scratch, env=env, stdin=_devnull(), stdout=fds[0],
                  stderr=fds[1], start_new_session=True, close_fds=True, preexec_fn=preexec)


def spawn(job: Path, scratch: Path, env: dict, out: Stream, err: Stream,
          direct: list[str] | None = None) -> Process:
    """Start the job in ``scratch`` with its standard output and error in ``out``, ``err``.

    ``direct``: the program and arguments of a job file that is one simple
    command (``direct.argv_of``), started without the shell when it can
    be; the file itself runs if it cannot (the shell then reports why).
    """
    streams = []
    try:
        for path, ours, append, reuse in (out, err):
            streams.append(("fd", _open_output(path, append, reuse), append) if ours
                           else ("path", path, append))
        if streams[0][0] == streams[1][0] == "path" and \
                os.path.abspath(out.path) == os.path.abspath(err.path):
            streams[1] = ("dup", 1, err.append)  # one file for both: opened once, shared
        start = _posix_spawn if _SPAWN_OK and _devnull() > 2 else _popen
        started = _spawn_direct(direct, scratch, env, streams) if start is _posix_spawn \
            else None
        if started is not None:
            return started
        argv = [str(job)]
        for attempt in (1, 2):
            try:
                return start(argv, scratch, env, streams)
            except OSError as exc:
                # A script without a "#!" line: run it with sh, as shells do.
                if exc.errno != errno.ENOEXEC or attempt == 2:
                    raise
                argv = ["/bin/sh", str(job)]
        raise AssertionError("unreachable")
    finally:
        for kind, value, _ in streams:
            if kind == "fd":
                os.close(value)


def _spawn_direct(argv: list[str] | None, scratch: Path, env: dict, streams) -> Child | None:
    """Start a simple command's program itself; ``None`` if there is none or it cannot start.

    A failure here has started nothing (``posix_spawn`` reports the failed
    ``exec``), so running the job file next runs the job exactly once.
    """
    if not argv:
        return None
    from .direct import program

    path = program(argv[0], env.get("PATH"))
    if path is None:
        return None
    try:
        return _posix_spawn(argv, scratch, env, streams, program=path)
    except OSError:
        return None


#: ``posix_spawn`` with a new session (Linux with glibc 2.26 or newer, and others).
_SPAWN_OK = hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_OPEN") \
    and hasattr(os, "waitstatus_to_exitcode")


class Kept(NamedTuple):
    """Where a job's output ended up: ``path`` (``None``: there was none) and any problem.

    ``spare``: the job's empty file, left in place for the worker's next job
    (only when ``keep_outputs`` was told nothing of the job survives).
    """

    path: str | None
    problem: str | None = None
    spare: str | None = None


def keep_outputs(pairs: list[tuple[str, str]], group: int,
                 reuse_ok: bool = False) -> list[Kept]:
    """After a job: give its output in each ``(fresh, final)`` pair its own name.

    ``fresh`` is the file this job alone wrote (created anew for it).  Empty
    output is removed unless a process of the job's group still runs and may
    write later: its output must stay under this job's name.  A rename that
    fails (``final`` is a directory, say) leaves the output where it is and
    says why: the job has run, and that must not make it run again.
    """
    kept: list[Kept] = []
    lingering = None  # asked once, and only if some output is empty
    for fresh, final in pairs:
        try:
            empty = os.lstat(fresh).st_size == 0
        except FileNotFoundError:
            kept.append(Kept(None))
            continue
        if empty:
            if lingering is None:
                lingering = _group_alive(group)
            if not lingering:
                if reuse_ok:  # nothing of the job runs: nobody can write into it later
                    kept.append(Kept(None, spare=fresh))
                else:
                    files.unlink(fresh)
                    kept.append(Kept(None))
                continue
        try:
            os.rename(fresh, final)
            kept.append(Kept(final))
        except OSError as exc:
            kept.append(Kept(fresh, f"its output could not be renamed to {final} "
                                    f"({exc.strerror}); it is in {fresh}"))
    return kept


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Ask Linux to make this process the parent of its jobs' orphans.

    A job's process that outlives its parent (a daemon started with
    ``setsid ... &``) is then re-parented to the worker instead of ``init``,
    so the worker can tell whether anything of its last job still runs
    (``survivors``).  False where the kernel has no such option.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def survivors() -> bool:
    """Does any process descended from our jobs still run?  Reaps those that ended.

    Only meaningful in a subreaper whose only children are its jobs (a
    detached worker), called between jobs: every descendant of a job that
    outlived its parent is then our child, so "no child left" proves that
    nothing of the last job runs.
    """
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


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


def _signal_all(proc: Process, extra: list, sig: int) -> None:
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

    def __init__(self, proc: Process) -> None:
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


def supervise(proc: Process, timeout: float | None, kill_grace: float,
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
                why = states.TIMED_OUT
            elif cancelled():
                why = states.CANCELLED
            if why:
                _kill(proc, waiter, kill_grace)
                break
        return why, time.time()
    finally:
        waiter.close()


def stop(proc: Process, grace: float) -> None:
    """End a running job (and what it started) and reap it, whatever else went wrong."""
    if proc.returncode is not None:
        return
    waiter = Waiter(proc)
    try:
        _kill(proc, waiter, grace)
    finally:
        waiter.close()


def _kill(proc: Process, waiter: Waiter, grace: float) -> None:
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


def outcome(proc: Process, started: float, finished: float, why: str | None) -> Outcome:
    """Turn a finished process into an ``Outcome``."""
    code = proc.returncode
    exit_code, sig = (code, None) if code >= 0 else (None, -code)
    if why:
        status = why
    else:
        status = states.SUCCEEDED if code == 0 else states.FAILED
    reason = None
    if sig is not None and not why:
        reason = f"killed by signal {sig} ({signal.Signals(sig).name})" if sig in \
            signal.Signals._value2member_map_ else f"killed by signal {sig}"
    return Outcome(started, finished, exit_code, sig, status, reason,
                   getattr(proc, "usage", None))
