"""``system_status``: what the jar holds and what every worker is doing.

It only reads, and files move under it while it reads: anything that
vanishes mid-listing is simply not counted.  Queued jobs are counted from
directory listings and their priorities read from their names, so a jar
with 100,000 queued jobs is summarised without a ``stat`` per job.  Finished jobs are counted
from the first ``COUNT_LIMIT`` entries of ``completed/`` at most (a bigger
history is ``COUNT_LIMIT``, marked ``total_capped``): the status reads no
record per finished job and never lists a history of any size whole, so
its cost does not grow with the history.  How the recent
jobs ended (the ``succeeded``/``failed`` counts and the recent failures)
comes from a bounded source that workers write anyway, at no cost to
throughput: the last ``LOG_TAIL`` bytes of each worker's log, whose
``finish NAME STATUS`` lines name every job a worker finished; only the
``RECENT`` newest failures have their records read.

Everything it reads may have been written by someone else, carelessly or on
purpose: a directory it may not read is reported (``unreadable``), never a
crash, and a field of a record or of a worker's ``info.yaml`` of the wrong
type is shown as unknown (``None``), never trusted.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from . import records, states
from .config import load
from .control import is_paused, is_stopped
from .errors import JobJarError
from .find import running_jobs
from .hold import holds
from .layout import GLOBAL_CONTROLS, WORKER_EXITED, WORKER_LOG, Jar, held_job
from .liveness import heartbeat_age, is_alive_here, read_info, reading_now
from .naming import priority_of, split_worker_name

#: How many recent failures the status lists.
RECENT = 10
#: Bytes read from the end of each worker's log for its recent finishes (about 120 jobs).
LOG_TAIL = 16384
#: At most this many of the newest finishes (all workers together) are counted.
MAX_RECENT = 1000
#: At most this many entries of ``completed/`` are counted: listing a history of
#: 100,000 whole took half as long again as the rest of the status.
COUNT_LIMIT = 10000
#: Fields of a record shown among the recent failures.
FAILURE_FIELDS = ("name", "status", "finished", "exit_code", "signal", "reason", "worker")


class Unreadable(list):
    """The directories of the jar that could not be listed, as paths relative to the jar."""

    def __init__(self, jar: Jar) -> None:
        super().__init__()
        self.jar = jar

    def add(self, path: Path | str) -> None:
        """Note ``path`` (once)."""
        where = os.path.relpath(path, self.jar.home)
        where = str(path) if where.startswith("..") else where
        if where not in self:
            self.append(where)


def _scan(path: Path, unreadable: Unreadable) -> tuple[list[str], list[str], list[os.DirEntry]]:
    """One listing of a directory: file names, real subdirectories, dot-entries."""
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
    except OSError:  # made unreadable by its owner, or a broken mount
        unreadable.add(path)
    return names, sorted(dirs), dots


def _text(value: object) -> str | None:
    """A string field read from a file, or ``None`` if it is not a string."""
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    """An integer field read from a file, or ``None`` if it is not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positive(value: object, default: float) -> float:
    """A positive, finite number read from a file, else ``default``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 0 < value < math.inf:
            return float(value)
    return default


def _queue_summary(names: list[str]) -> dict:
    priorities = [priority_of(n) for n in names]
    return {"count": len(names), "min_priority": min(priorities, default=None),
            "max_priority": max(priorities, default=None)}


def _tree(top: Path, unreadable: Unreadable) -> tuple[dict[str, list[str]], list[os.DirEntry]]:
    """Job names per category (``""``: uncategorized) under a state directory, and dot-entries.

    ``layout.jobs_in`` walks the same tree, but silently skips what it cannot
    read, and drops the dot-files; this listing reports the first and keeps
    the second, and still lists each directory exactly once (at 100,000
    queued jobs a listing is most of the cost of a status).
    """
    names, categories, dots = _scan(top, unreadable)
    found = {"": names}
    for category in categories:
        names, _, more = _scan(top / category, unreadable)
        found[category] = names
        dots += more
    return found, dots


def queued(jar: Jar, unreadable: Unreadable | None = None) -> tuple[dict, list[os.DirEntry]]:
    """Unclaimed jobs per category (``""`` is uncategorized), and the dot-files among them."""
    unreadable = Unreadable(jar) if unreadable is None else unreadable
    found, dots = _tree(jar.unclaimed, unreadable)
    categories = {category: _queue_summary(names) for category, names in found.items()}
    summary = {"total": sum(c["count"] for c in categories.values()), "categories": categories}
    return summary, dots


def count(jar: Jar, state: str, unreadable: Unreadable) -> int:
    """Jobs in a state's directory (``waiting``, ``limbo``, ...), all categories if it has any."""
    if state in states.IN_JAR:  # STATE/NAME and STATE/CATEGORY/NAME
        found, _ = _tree(jar.state_dir(state), unreadable)
        return sum(len(names) for names in found.values())
    names, _, _ = _scan(jar.state_dir(state), unreadable)
    return len(names)


def _failure(record: dict, status: str) -> dict:
    """The fields of a failed job's record that the status lists, each of its expected type."""
    failure = {k: _text(record.get(k)) for k in FAILURE_FIELDS}
    failure.update(status=status, exit_code=_integer(record.get("exit_code")),
                   signal=_integer(record.get("signal")))
    return failure


def _tail(path: Path, size: int = LOG_TAIL) -> str:
    """The last ``size`` bytes of a file, whole lines only; never through a link or a fifo."""
    from .files import read_tail

    data, cut = read_tail(path, size)
    if cut:  # the first line was cut: drop it
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", "backslashreplace")


def recent_finishes(jar: Jar, workers: list[str]) -> list[tuple[str, str, str]]:
    """``(time, name, status)`` of the jobs that left the jar, from the tails of workers' logs.

    Newest first, each job once (its last finish).  A log is its worker's
    owner's file: a line is only a hint (a name with a ``/`` or a leading
    dot is dropped, a status outside ``states.FINAL`` ignored), and rejected
    jobs, which have their own listing, are left out.
    """
    finishes: dict[str, tuple[str, str, str]] = {}
    for worker in workers:
        for line in _tail(jar.worker_dir(worker) / WORKER_LOG).split("\n"):
            when, _, rest = line.partition(" finish ")
            name, _, status = rest.rpartition(" ")
            if not name or " " in when or status not in states.FINAL \
                    or status == states.REJECTED or "/" in name or name.startswith("."):
                continue
            if name not in finishes or finishes[name][0] < when:
                finishes[name] = (when, name, status)
    return sorted(finishes.values(), reverse=True)


def finished(jar: Jar, unreadable: Unreadable | None = None,
             workers: list[str] | None = None) -> tuple[dict, list[dict]]:
    """Completed jobs: how many (a listing), how the recent ones ended, the recent failures.

    ``total`` counts the files in ``completed/``, up to ``COUNT_LIMIT``
    (``total_capped``: there are more); ``succeeded``, ``failed`` and
    ``other`` count the jobs among the ``MAX_RECENT`` newest of
    ``recent_finishes`` whose file is still in ``completed/`` (``recent``).
    """
    total, capped = count_up_to(jar.completed, COUNT_LIMIT,
                                unreadable if unreadable is not None else Unreadable(jar))
    counts: dict[str, int] = {}
    failures = []
    newest = recent_finishes(jar, jar.workers() if workers is None else workers)[:MAX_RECENT]
    recent = [f for f in newest if os.path.lexists(jar.completed / f[1])]
    for when, name, status in recent:
        counts[status] = counts.get(status, 0) + 1
        if status != states.SUCCEEDED and len(failures) < RECENT:
            record = records.read(jar.record(name)) or {}
            failure = _failure(record, status)
            failure.update(name=name, finished=failure["finished"] or when)
            failures.append(failure)
    succeeded = counts.pop(states.SUCCEEDED, 0)
    failed = counts.pop(states.FAILED, 0)
    return ({"total": total, "total_capped": capped, "succeeded": succeeded,
             "failed": failed, "other": counts, "recent": len(recent)}, failures)


def count_up_to(path: Path, limit: int, unreadable: Unreadable) -> tuple[int, bool]:
    """The entries of a directory that are not dot-names, counted up to ``limit``.

    ``(count, True)`` when there are at least ``limit``: the listing stops
    there (``os.scandir`` reads the directory piece by piece), so a history
    of a million files costs what one of ``limit`` does.
    """
    found = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name[0] != ".":
                    found += 1
                    if found >= limit:
                        return found, True
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:  # made unreadable by its owner, or a broken mount
        unreadable.add(path)
    return found, False


def _alive(jar: Jar, worker: str, node: str) -> bool | None:
    """``is_alive_here``, with a forged ``info.yaml`` counted as "cannot tell"."""
    try:
        return is_alive_here(jar, worker, node)
    except (ValueError, TypeError, OverflowError):  # create_time: "x", a list, 1e999
        return None


def _worker_state(jar: Jar, wdir: Path, alive: bool | None, age: float | None,
                  interval: float, held: bool) -> str:
    """One worker's state (the table in ``docs/operating.md``)."""
    if os.path.exists(wdir / WORKER_EXITED):
        return "exited"
    if alive is False:
        return "dead"
    if alive is None and (age is None or age > max(3 * interval, 60)):
        return "unresponsive"
    if is_stopped(jar, wdir):
        return "stopping"
    if held:
        return "working"
    return "paused" if is_paused(jar, wdir) else "idle"


def _categories(value: object) -> list[str] | None:
    """A worker's categories from its ``info.yaml``: a list of strings, else ``None``."""
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return value
    return None


def worker_states(jar: Jar, node: str, now_fs: float,
                  unreadable: Unreadable | None = None) -> tuple[list[dict], list[dict]]:
    """Every worker's state, and the jobs stranded by dead ones (``now_fs``: the jar's clock)."""
    busy = {worker for worker, _path in running_jobs(jar).values()}
    workers, stranded = [], []
    try:
        names = jar.workers()
    except OSError:
        names = []
        if unreadable is not None:
            unreadable.add(jar.worker_home)
    for worker in names:
        wdir = jar.worker_dir(worker)
        info = read_info(wdir)
        try:
            wnode, pid = split_worker_name(worker)
        except ValueError:
            continue
        age = heartbeat_age(jar, worker, now_fs)
        held = held_job(wdir)
        state = _worker_state(jar, wdir, _alive(jar, worker, node), age,
                              _positive(info.get("heartbeat"), 30.0), held is not None)
        entry = {"name": worker, "node": wnode, "pid": pid,
                 "categories": _categories(info.get("categories")),
                 "started": _text(info.get("started")), "heartbeat_age": _round(age),
                 "job": held[1].name if held else None, "running_for": None, "state": state}
        if held and worker in busy:
            try:
                entry["running_for"] = _round(now_fs - os.lstat(jar.claimed_link(worker)).st_mtime)
            except OSError:
                pass
        workers.append(entry)
        if held and state in ("dead", "exited", "unresponsive"):
            stranded.append({"job": held[1].name, "worker": worker, "worker_state": state})
    return workers, stranded


#: Worker states that count as a node's live workers in the node table.
LIVE = ("idle", "working", "paused", "stopping")


def nodes(jar: Jar, workers: list[dict], now: float,
          published: dict | None = None) -> list[dict]:
    """One row per node: its workers and running jobs (counted from the workers' states)
    and what it last published of itself (``machine.read_all``).

    A node with workers but no usable node file (missing, stale, malformed)
    is listed with ``known`` false and its figures ``None``; so is a node
    file with no live workers behind it (a retired node's stays listed
    until someone removes ``nodes/NODE.yaml``: it is the jar's only trace
    of that node).
    """
    if published is None:
        from . import machine

        published = machine.read_all(jar, now)
    names = set(published) | {w["node"] for w in workers if w["state"] in LIVE}
    rows = []
    for node in sorted(names):
        mine = [w for w in workers if w["node"] == node and w["state"] in LIVE]
        row = {"node": node, "known": False, "workers": len(mine),
               "running": sum(1 for w in mine if w["job"]), "updated": None, "age": None,
               "cpus": None, "load1": None, "load5": None, "load15": None,
               "load_per_cpu": None, "mem_total_kb": None, "mem_available_kb": None,
               "max_load": None, "min_free_memory_kb": None}
        figures = published.get(node)
        if figures is not None:
            row.update({k: v for k, v in figures.as_record().items() if k in row},
                       known=True, updated=records.utc_iso(figures.time),
                       age=_round(now - figures.time),
                       load_per_cpu=round(figures.load_per_cpu, 2))
        rows.append(row)
    return rows


def too_big(jar: Jar, published: dict) -> list[dict]:
    """Queued jobs too big for every known node: ``{name, category, reason}``.

    Not every queued job is read (a jar may hold 100,000): only those the
    nodes name in their files as too big for them (at most
    ``machine.MAX_TOO_BIG`` each), each checked again here against every
    known node (``placement.held_back``).  A name from a file is used only
    if it is a plain job name in a plain category of the queue.
    """
    from .depend import read_head
    from .directives import check_job_name, parse
    from .naming import check_word
    from .placement import held_back

    found, seen = [], set()
    for figures in published.values():
        for entry in figures.too_big if figures is not None else ():
            if entry in seen:
                continue
            seen.add(entry)
            category, _, name = entry.rpartition("/")
            try:
                if category:
                    check_word("category", category)
                check_job_name(name)
                path = jar.queue_dir(category or None) / name
                reason = held_back(jar, parse(read_head(path)))
            except Exception:  # gone, claimed, malformed, not a name: not listed
                continue
            if reason and reason.startswith("too big"):
                found.append({"name": name, "category": category or None, "reason": reason})
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, value), 1)


def rejected(jar: Jar, unreadable: Unreadable | None = None) -> tuple[list[dict], int]:
    """Files set aside instead of run: the first ``RECENT`` by name with their record's
    reason, and how many there are (a listing: no record read beyond those shown)."""
    names, dirs, _ = _scan(jar.rejected, unreadable if unreadable is not None else Unreadable(jar))
    found = []
    for name in (sorted(names) + dirs)[:RECENT]:
        record = records.read(jar.record(name)) or {}
        found.append({"name": name, "reason": _text(record.get("reason"))})
    return found, len(names) + len(dirs)


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


def _now(jar: Jar) -> float:
    """``reading_now``, or this node's clock if the workers' directory cannot be read."""
    try:
        return reading_now(jar)
    except OSError:
        return time.time()


def project_counts(config) -> dict[str, dict]:
    """Each project of the jar (``layout.projects``): its jar and its jobs per state.

    The jar is the one the settings select without ``JJ_PROJECT``; a job
    counts as running when its worker's ``claimed/`` link names it.
    """
    from .layout import project_home, projects

    base = config.home.parent.parent if config.project else config.home
    found = {}
    for name in projects(base):
        try:
            home = project_home(base, name)
        except JobJarError:  # replaced by something else meanwhile
            continue
        jar = Jar(home, home / "workers")
        unreadable = Unreadable(jar)
        jobs = {state: count(jar, state, unreadable) for state in states.STATES
                if state != states.RUNNING}
        jobs[states.RUNNING] = len(running_jobs(jar))
        found[name] = {"jar": str(home), "jobs": {s: jobs[s] for s in states.SHOWN},
                       "unreadable": sorted(unreadable)}
    return found


def system_status(all_projects: bool = False) -> dict:
    """The whole status as a dict (the schema is in ``docs/operating.md``).

    ``all_projects``: also ``projects``, each project's counts (``project_counts``).
    """
    config = load()
    jar = Jar.from_config(config)
    if not jar.home.is_dir():  # a mistyped JJ_HOME must not look like an empty jar
        raise JobJarError(f"no jar at {jar.home} (nothing was submitted or started there; "
                          "check JJ_HOME)")
    unreadable = Unreadable(jar)
    now_fs = _now(jar)  # read-only: no probe file for the server's clock
    unclaimed, dots = queued(jar, unreadable)
    workers, stranded = worker_states(jar, config.node, now_fs, unreadable)
    completed, failures = finished(jar, unreadable, [w["name"] for w in workers])
    set_aside, set_aside_total = rejected(jar, unreadable)
    summaries = {states.UNCLAIMED: unclaimed, states.RUNNING: sum(1 for w in workers if w["job"]),
                 states.COMPLETED: completed, states.REJECTED: set_aside}
    jobs = {state: summaries[state] if state in summaries else count(jar, state, unreadable)
            for state in states.STATES}  # any other state: how many jobs it holds
    jobs["rejected_total"] = set_aside_total
    jobs["hidden"] = hidden(jar, dots, now_fs)
    from .machine import read_all

    published = read_all(jar)
    return {
        "jar": str(jar.home), "worker_home": str(jar.worker_home), "node": config.node,
        "time": records.utc_iso(time.time()),
        "control": {name.lower(): os.path.exists(jar.worker_home / name)
                    for name in GLOBAL_CONTROLS},
        "holds": holds(jar),
        "jobs": jobs,
        "workers": workers, "nodes": nodes(jar, workers, time.time(), published),
        "too_big": too_big(jar, published), "stranded": stranded, "recent_failures": failures,
        "unreadable": sorted(unreadable),
        **({"projects": project_counts(config)} if all_projects else {}),
    }
