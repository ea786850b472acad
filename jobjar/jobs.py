"""Working with single jobs: where is it, cancel it, run it again, wait for it.

All of it goes through the same files as everything else: ``find.locate``
to see where a job is, a request file in ``cancel/`` that the worker running
a job polls, and renames between the state directories.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import records
from .depend import fail_record
from .errors import JobJarError
from .find import Location, locate
from .layout import Jar


class WaitTimeout(JobJarError):
    """``wait`` gave up before every job had left the jar."""


def _find(name: str, jar: Jar) -> Location:
    where = locate(name, jar)
    if where is None:
        raise JobJarError(f"no job named {name!r} in {jar.home}")
    return where


def job_info(name: str, jar: Jar | None = None) -> dict:
    """Where job ``name`` is now and its record (if it has one yet)."""
    jar = jar or Jar.from_config()
    where = _find(name, jar)
    info = {"name": name, "state": where.state, "path": str(where.path),
            "category": where.category, "worker": where.worker, "running_for": None,
            "record": records.read(jar.record(name))}
    if where.state == "running":
        try:
            info["running_for"] = round(time.time() - os.lstat(
                jar.claimed_link(where.worker)).st_mtime, 1)
        except OSError:
            pass
    return info


def _cancel_one(name: str, jar: Jar, where: Location) -> str:
    if where.state in ("completed", "rejected"):
        return "already finished"
    if where.state == "limbo":
        raise JobJarError(f"job {name!r} is still being submitted (in limbo/)")
    os.makedirs(jar.cancel, exist_ok=True)
    request = jar.cancel / name
    with open(request, "a"):
        pass
    if where.state in ("unclaimed", "waiting"):
        record = fail_record(jar, where.path, where.category, f"cancelled while {where.state}",
                             "cancelled")
        try:
            os.rename(where.path, jar.completed / name)
        except FileNotFoundError:  # a worker claimed it just now: it will see the request
            where = locate(name, jar) or where
            if where.state != "running":
                return "already finished"
        else:
            records.write(jar.record(name), record)
            os.unlink(request)
            return "cancelled"
    return f"cancel requested (running on {where.worker})"


def _owned_by_me(path) -> bool:
    try:
        return os.lstat(path).st_uid == os.getuid()
    except OSError:
        return False


def jobs_in_jar(jar: Jar) -> list[Location]:
    """Every job still in the jar: waiting, unclaimed or running."""
    from .depend import waiting_jobs
    from .find import running_jobs

    found = [Location("waiting", p, c) for c, p in waiting_jobs(jar)]
    for category in [None] + jar.categories():
        try:
            entries = list(os.scandir(jar.queue_dir(category)))
        except FileNotFoundError:
            continue
        found += [Location("unclaimed", Path(e.path), category)
                  for e in entries if not e.name.startswith(".")
                  and not e.is_dir(follow_symlinks=False)]
    for worker, path in running_jobs(jar).values():
        category = path.parent.name if path.parent.name != "job" else None
        found.append(Location("running", path, category, worker))
    return found


def cancel_job(*names: str, category: str | None = None, mine: bool = False,
               jar: Jar | None = None) -> list[tuple[str, str]]:
    """Cancel jobs by name, every job of a category, or every job of yours.

    Returns ``(name, what happened)`` pairs.  A queued or waiting job leaves
    the jar at once, recorded ``cancelled``; a running job is killed by its
    worker (on whatever node) within about a second.
    """
    jar = jar or Jar.from_config()
    targets = [(n, _find(n, jar)) for n in names]
    if category is not None or mine:
        for where in jobs_in_jar(jar):
            if category is not None and where.category != category:
                continue
            if mine and not _owned_by_me(where.path):
                continue
            targets.append((where.path.name, where))
    if not targets and not (category is not None or mine):
        raise JobJarError("name the jobs to cancel, or give a category or --mine")
    return [(name, _cancel_one(name, jar, where)) for name, where in targets]


def resubmit_job(*names: str, jar: Jar | None = None) -> list[str]:
    """Put finished jobs back into their jar, each as a new attempt; return their names."""
    jar = jar or Jar.from_config()
    done = []
    for name in names:
        where = _find(name, jar)
        if where.state != "completed":
            raise JobJarError(f"job {name!r} has not finished (it is {where.state})")
        record = records.read(jar.record(name)) or {}
        category = record.get("category")
        # Marked as pending first, so recovery never takes it for a finished job.
        record.update(status=records.PENDING, reason="resubmitted")
        records.write(jar.record(name), record)
        target = jar.queue_dir(category) / name
        os.makedirs(target.parent, exist_ok=True)
        try:
            os.rename(where.path, target)
        except FileNotFoundError:
            raise JobJarError(f"job {name!r} moved while it was being resubmitted") from None
        done.append(name)
    return done


def _finished(jar: Jar, name: str) -> bool:
    return os.path.lexists(jar.completed / name) or os.path.lexists(jar.rejected / name)


def _bar(done: int, total: int, failed: int, running: int, elapsed: float) -> str:
    width = 30
    filled = width * done // total if total else width
    eta = elapsed / done * (total - done) if done else None
    left = f", ~{_clock(eta)} left" if eta is not None and done < total else ""
    return (f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} done, {failed} failed, "
            f"{running} running, {_clock(elapsed)} elapsed{left}   ")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def wait(names: list[str] | None = None, timeout: float | None = None, progress: bool = False,
         jar: Jar | None = None) -> list[dict]:
    """Block until the jobs have left the jar; return their records.

    Without names, waits for every job queued, waiting or running now.  A
    progress bar goes to standard error when ``progress`` is true.  Raises
    ``WaitTimeout`` after ``timeout`` seconds.
    """
    jar = jar or Jar.from_config()
    if names:
        for name in names:
            _find(name, jar)
        pending = list(dict.fromkeys(names))
    else:
        pending = [where.path.name for where in jobs_in_jar(jar)]
    total, order = len(pending), list(pending)
    start = time.monotonic()
    interval, failed = 0.02, 0
    while True:
        still = []
        for name in pending:
            if _finished(jar, name):
                status = records.status_of(jar.record(name))
                failed += status != "succeeded"
            else:
                still.append(name)
        pending = still
        elapsed = time.monotonic() - start
        if progress:
            running = len(os.listdir(jar.claimed)) if jar.claimed.is_dir() else 0
            sys.stderr.write(_bar(total - len(pending), total, failed, running, elapsed))
            sys.stderr.flush()
        if not pending:
            break
        if timeout is not None and elapsed >= timeout:
            if progress:
                sys.stderr.write("\n")
            raise WaitTimeout(f"{len(pending)} of {total} jobs still in the jar after "
                              f"{timeout:g} s")
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)
    if progress:
        sys.stderr.write("\n")
    return [records.read(jar.record(name)) or {"name": name, "status": None} for name in order]
