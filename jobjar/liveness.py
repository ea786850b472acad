"""Is a worker alive?  Process checks on this node, heartbeats on any node.

A worker records its pid and its process identity (``identity``) in
``info.yaml`` when it starts: ``start_ticks``, the start time in clock
ticks since boot from ``/proc/PID/stat`` (no wall clock involved, so a
clock step cannot change it; compared exactly), and, for workers of older
versions sharing the jar, ``create_time`` (wall-clock seconds).  Readers
prefer ``start_ticks`` and fall back to ``create_time``.  On its own node, a
worker is alive when a process with that pid exists *and* has that
identity, so a recycled pid now owned by another program is not mistaken
for the worker.  Other nodes' processes cannot be seen; there, the age of
the ``heartbeat`` file, measured against the shared filesystem's own clock,
is the only evidence.  Numbers read from ``info.yaml`` are checked: a
forged one means "unknown", never a crash.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from . import files, records
from .layout import WORKER_EXITED, WORKER_HEARTBEAT, WORKER_INFO, Jar
from .naming import split_worker_name


def process_start_time(pid: int) -> float | None:
    """The start time of process ``pid`` (``None`` if there is no such process)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # dead, only not reaped by its parent
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """Process ``pid``'s start time in clock ticks since boot (``None``: unknown).

    Field 22 of ``/proc/PID/stat``; the command name (field 2) may hold
    spaces and parentheses, so fields are counted after its last ``)``.
    A zombie counts as gone.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as stat_file:
            data = stat_file.read()
    except (OSError, ValueError, OverflowError):
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def identity(pid: int) -> dict:
    """The fields that identify process ``pid`` in a worker's ``info.yaml``.

    ``{"start_ticks": int | None, "create_time": float | None}``: the first
    is clock-independent and preferred; the second is what older versions
    read.  A worker writes both (``info.update(identity(os.getpid()))``).
    """
    return {"start_ticks": start_ticks(pid), "create_time": process_start_time(pid)}


def number(value: object) -> float | None:
    """A finite number read from a file, else ``None`` (a forged value means unknown)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def same_process(info: dict, pid: int) -> bool | None:
    """Is ``pid`` the process ``info`` describes?  ``None`` when ``info`` cannot tell.

    ``start_ticks`` is compared exactly; without it (a worker of an older
    version) ``create_time`` is compared within 0.05 s.  A field that is not
    a number (a forged or damaged file) makes the answer unknown.
    """
    ticks = info.get("start_ticks")
    if ticks is not None:
        if isinstance(ticks, bool) or not isinstance(ticks, int):
            return None
        now_ticks = start_ticks(pid)
        if now_ticks is not None:
            return now_ticks == ticks
        if process_start_time(pid) is None:
            return False
        # /proc cannot be read here: fall back to the wall-clock field
    if info.get("create_time") is None:
        return None
    recorded = number(info.get("create_time"))
    if recorded is None:
        return None
    started = process_start_time(pid)
    if started is None:
        return False
    return abs(recorded - started) < 0.05


def read_info(worker_dir: Path) -> dict:
    """The worker's ``info.yaml`` (empty if missing, unreadable or not a mapping)."""
    info = records.read(worker_dir / WORKER_INFO)
    return info if isinstance(info, dict) else {}


def is_alive_here(jar: Jar, worker: str, node: str) -> bool | None:
    """On this node: is worker ``node.pid`` alive?  ``None``: elsewhere, or cannot tell.

    "Cannot tell" is a worker directory whose ``info.yaml`` holds no usable
    identity (forged or damaged), or was not written by the directory's
    owner, or whose pid belongs to another user's process: it is neither
    counted as a live worker nor recovered as a dead one (``recover_jobs
    --stale`` still judges it by its heartbeat).  Only the worker's own
    ``exited`` file says it stopped.
    """
    try:
        wnode, pid = split_worker_name(worker)
    except ValueError:
        return None
    if wnode != node:
        return None
    wdir = jar.worker_dir(worker)
    if start_ticks(pid) is None and process_start_time(pid) is None:
        return False
    try:
        owner = os.lstat(wdir).st_uid
    except OSError:
        return None
    if _written_by(wdir / WORKER_EXITED, owner):
        return False
    if process_uid(pid) not in (owner, None):
        return None  # another user's process: a recycled pid, or a directory made by someone else
    if not _written_by(wdir / WORKER_INFO, owner):
        # starting up (no info.yaml yet), or one that someone else replaced or removed
        return True if _young(wdir, pid) else None
    info = read_info(wdir)
    if "start_ticks" not in info and "create_time" not in info:
        return None
    return same_process(info, pid)


def _written_by(path: Path, owner: int) -> bool:
    """Is ``path`` a regular file of user ``owner``?

    Whoever may write ``workers/`` may put an ``exited`` file or a forged
    ``info.yaml`` in another user's worker directory: only the worker's
    own files count as evidence that it died.
    """
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return info.st_uid == owner and (info.st_mode & 0o170000) == 0o100000


def process_uid(pid: int) -> int | None:
    """The real user id of process ``pid`` (``None``: unknown)."""
    try:
        return os.stat(f"/proc/{int(pid)}").st_uid
    except (OSError, ValueError, OverflowError):
        return None


def _young(wdir: Path, pid: int) -> bool:
    """A worker starting up (no ``info.yaml`` yet): trust the pid if it is as young as the dir."""
    started = process_start_time(pid)
    try:
        return started is not None and abs(os.stat(wdir).st_mtime - started) < 5
    except OSError:
        return False


def filesystem_now(directory: Path) -> float:
    """The current time by the clock of the filesystem holding ``directory``.

    Touching a probe file makes the (NFS) server stamp it; its mtime is the
    server's "now", comparable with other files' mtimes whatever our own
    clock says.
    """
    # An unpredictable name created with O_EXCL|O_NOFOLLOW: a link planted at
    # a guessable name would make us truncate its target.
    probe = directory / f".clock.{os.getpid()}.{files.token()}.tmp"
    try:
        os.close(os.open(probe, files.CREATE, 0o600))
    except OSError:
        return time.time()
    try:
        return os.lstat(probe).st_mtime
    except OSError:
        return time.time()
    finally:
        files.unlink(probe)


def reading_now(jar: Jar) -> float:
    """"Now" for commands that only read (``system_status``, ``job_info``).

    They must not write a probe file, so they take this node's clock, moved
    forward to the newest heartbeat in the jar if that is later: a clock
    that runs behind the file server's then still shows sensible ages (one
    that runs ahead shows ages too large by its lead; ``recover_jobs``,
    which acts on ages, uses ``filesystem_now`` instead).
    """
    newest = 0.0
    for worker in jar.workers():
        try:
            newest = max(newest, os.lstat(jar.worker_dir(worker) / WORKER_HEARTBEAT).st_mtime)
        except OSError:
            continue
    return max(time.time(), newest)


def heartbeat_age(jar: Jar, worker: str, now: float) -> float | None:
    """Seconds since the worker last touched its heartbeat (``None``: never)."""
    try:
        return now - os.lstat(jar.worker_dir(worker) / WORKER_HEARTBEAT).st_mtime
    except OSError:
        return None
