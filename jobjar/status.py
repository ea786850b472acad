"""``system_status``: what the jar holds and what every worker is doing.

It only reads, and files move under it while it reads: anything that
vanishes mid-listing is simply not counted.  Queued jobs are counted from
directory listings and their priorities read from their names, so a jar
with 100,000 queued jobs is summarised without a ``stat`` per job; finished
jobs are summarised from their records (one small read each).
"""

from __future__ import annotations

import os
import time

from . import records
from .config import load
from .control import is_paused, is_stopped
from .find import running_jobs
from .layout import PAUSE_ALL, STOP_ALL, WORKER_EXITED, Jar, held_job
from .liveness import heartbeat_age, is_alive_here, read_info, reading_now
from .naming import priority_of, split_worker_name

#: How many recent failures the status lists.
RECENT = 10


def _names(path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if not e.name.startswith(".")
                    and not e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _dirs(path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".")
                          and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _queue_summary(names: list[str]) -> dict:
    priorities = [priority_of(n) for n in names]
    return {"count": len(names), "min_priority": min(priorities, default=None),
            "max_priority": max(priorities, default=None)}


def _scan_queue(path) -> tuple[list[str], list[str], list[os.DirEntry]]:
    """One listing of a queue directory: job names, subdirectories, dot-files."""
    names, dirs, dots = [], [], []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    dots.append(entry)
                elif entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.name)
                else:
                    names.append(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return names, sorted(dirs), dots


def queued(jar: Jar) -> tuple[dict, list[os.DirEntry]]:
    """Unclaimed jobs per category (``""`` is uncategorized), and the dot-files among them.

    Each queue directory is listed once (at 100,000 queued jobs a listing is
    most of the cost of a status).
    """
    names, subdirs, dots = _scan_queue(jar.unclaimed)
    categories = {"": _queue_summary(names)}
    for category in subdirs:
        names, _, more = _scan_queue(jar.unclaimed / category)
        categories[category] = _queue_summary(names)
        dots += more
    summary = {"total": sum(c["count"] for c in categories.values()), "categories": categories}
    return summary, dots


def finished(jar: Jar) -> tuple[dict, list[dict]]:
    """Counts of completed jobs by status, and the most recent failures."""
    counts: dict[str, int] = {}
    failures = []
    for name in _names(jar.completed):
        record = records.read(jar.record(name)) or {}
        status = record.get("status") or "unknown"
        counts[status] = counts.get(status, 0) + 1
        if status not in ("succeeded", "unknown"):
            failures.append({k: record.get(k) for k in (
                "name", "status", "finished", "exit_code", "signal", "reason", "worker")})
    failures.sort(key=lambda r: r.get("finished") or "")
    total = sum(counts.values())
    succeeded = counts.pop("succeeded", 0)
    failed = counts.pop("failed", 0)
    return ({"total": total, "succeeded": succeeded, "failed": failed, "other": counts},
            failures[-RECENT:][::-1])


def worker_states(jar: Jar, node: str, now_fs: float) -> tuple[list[dict], list[dict]]:
    """Every worker's state, and the jobs stranded by dead ones (``now_fs``: the jar's clock)."""
    busy = {worker for worker, _path in running_jobs(jar).values()}
    workers, stranded = [], []
    for worker in jar.workers():
        wdir = jar.worker_dir(worker)
        info = read_info(wdir)
        try:
            wnode, pid = split_worker_name(worker)
        except ValueError:
            continue
        alive = is_alive_here(jar, worker, node)
        age = heartbeat_age(jar, worker, now_fs)
        interval = float(info.get("heartbeat") or 30)
        held = held_job(wdir)
        entry = {"name": worker, "node": wnode, "pid": pid, "categories": info.get("categories"),
                 "started": info.get("started"), "heartbeat_age": _round(age),
                 "job": held[1].name if held else None, "running_for": None}
        if (wdir / WORKER_EXITED).exists():
            state = "exited"
        elif alive is False:
            state = "dead"
        elif alive is None and (age is None or age > max(3 * interval, 60)):
            state = "unresponsive"
        elif is_stopped(jar, wdir):
            state = "stopping"
        elif held:
            state = "working"
        elif is_paused(jar, wdir):
            state = "paused"
        else:
            state = "idle"
        if held and worker in busy:
            try:
                entry["running_for"] = _round(now_fs - os.lstat(jar.claimed_link(worker)).st_mtime)
            except OSError:
                pass
        entry["state"] = state
        workers.append(entry)
        if held and state in ("dead", "exited", "unresponsive"):
            stranded.append({"job": held[1].name, "worker": worker, "worker_state": state})
    return workers, stranded


def _round(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, value), 1)


def rejected(jar: Jar) -> list[dict]:
    """Files set aside instead of run, with the reason from their record."""
    found = []
    for name in sorted(_names(jar.rejected)) + sorted(_dirs(jar.rejected)):
        record = records.read(jar.record(name)) or {}
        found.append({"name": name, "reason": record.get("reason")})
    return found


def hidden(jar: Jar, dots: list[os.DirEntry], now: float) -> list[dict]:
    """Dot-files in the unclaimed jar (from ``queued``): never claimed, so shown.

    They are usually partial copies by ``rsync`` or an editor and are left
    where they are (moving one could break the copy); an old one is a
    leftover to remove by hand.  At most ``RECENT`` are listed, oldest first.
    """
    found = []
    for entry in dots:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:  # gone while we looked
            continue
        found.append({"name": os.path.relpath(entry.path, jar.home), "age": _round(age)})
    found.sort(key=lambda item: -(item["age"] or 0))
    return found[:RECENT]


def system_status() -> dict:
    """The whole status as a dict (the schema is in ``docs/operating.md``)."""
    config = load()
    jar = Jar.from_config(config)
    if not jar.home.is_dir():  # a mistyped JJ_HOME must not look like an empty jar
        from .errors import JobJarError

        raise JobJarError(f"no jar at {jar.home} (nothing was submitted or started there; "
                          "check JJ_HOME)")
    completed, failures = finished(jar)
    now_fs = reading_now(jar)  # read-only: no probe file for the server's clock
    unclaimed, dots = queued(jar)
    workers, stranded = worker_states(jar, config.node, now_fs)
    waiting = len(_names(jar.waiting)) + sum(len(_names(jar.waiting / c))
                                             for c in _dirs(jar.waiting))
    return {
        "jar": str(jar.home), "worker_home": str(jar.worker_home), "node": config.node,
        "time": records.utc_iso(time.time()),
        "control": {"stop_all": (jar.worker_home / STOP_ALL).exists(),
                    "pause_all": (jar.worker_home / PAUSE_ALL).exists()},
        "jobs": {"limbo": len(_names(jar.limbo)), "waiting": waiting, "unclaimed": unclaimed,
                 "running": sum(1 for w in workers if w["job"]), "completed": completed,
                 "rejected": rejected(jar), "hidden": hidden(jar, dots, now_fs)},
        "workers": workers, "stranded": stranded, "recent_failures": failures,
    }
