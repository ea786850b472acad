"""Is a worker alive?  Process checks on this node, heartbeats on any node.

A worker records its pid and the process's start time (``create_time``) in
``info.yaml`` when it starts.  On its own node, a worker is alive when a
process with that pid exists *and* started at that time, so a recycled pid
now owned by another program is not mistaken for the worker.  Other nodes'
processes cannot be seen; there, the age of the ``heartbeat`` file, measured
against the shared filesystem's own clock, is the only evidence.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import records
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


def read_info(worker_dir: Path) -> dict:
    """The worker's ``info.yaml`` (empty if missing or unreadable)."""
    return records.read(worker_dir / WORKER_INFO) or {}


def is_alive_here(jar: Jar, worker: str, node: str) -> bool | None:
    """On this node: is worker ``node.pid`` alive?  ``None`` if it is elsewhere."""
    try:
        wnode, pid = split_worker_name(worker)
    except ValueError:
        return None
    if wnode != node:
        return None
    wdir = jar.worker_dir(worker)
    if os.path.exists(wdir / WORKER_EXITED):
        return False
    started = process_start_time(pid)
    if started is None:
        return False
    recorded = read_info(wdir).get("create_time")
    if recorded is None:  # starting up: info not written yet; trust the pid if young
        try:
            return abs(os.stat(wdir).st_mtime - started) < 5
        except OSError:
            return False
    return abs(float(recorded) - started) < 0.05


def filesystem_now(directory: Path) -> float:
    """The current time by the clock of the filesystem holding ``directory``.

    Touching a probe file makes the (NFS) server stamp it; its mtime is the
    server's "now", comparable with other files' mtimes whatever our own
    clock says.
    """
    probe = directory / f".clock.{os.uname().nodename}.{os.getpid()}"
    try:
        with open(probe, "w"):
            pass
        return os.stat(probe).st_mtime
    except OSError:
        return time.time()
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass


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
            newest = max(newest, os.stat(jar.worker_dir(worker) / WORKER_HEARTBEAT).st_mtime)
        except OSError:
            continue
    return max(time.time(), newest)


def heartbeat_age(jar: Jar, worker: str, now: float) -> float | None:
    """Seconds since the worker last touched its heartbeat (``None``: never)."""
    try:
        return now - os.stat(jar.worker_dir(worker) / WORKER_HEARTBEAT).st_mtime
    except OSError:
        return None
