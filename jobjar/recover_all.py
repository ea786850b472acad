"""``recover_jobs``: find every stranded job and half-done move, and repair it.

What counts as dead:

* a worker of *this* node whose process is gone (or whose pid now belongs
  to another program: the recorded start time tells them apart);
* with ``stale=SECONDS``, a worker of *any* node whose heartbeat is older
  than that, judged by the shared filesystem's clock.  A worker cut off by a
  network partition may still be running its job, so this gives
  at-least-once execution, not exactly-once.

Besides the jobs of dead workers it repairs the other states a crash can
leave (see ``docs/protocol.md``): dangling ``claimed/`` links, limbo files
older than a day, stale temporary record files, and cancel requests whose
job has already left the jar.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import faults, records
from .config import Config, load
from .layout import WORKER_EXITED, WORKER_SCRATCH, Jar, held_job
from .liveness import filesystem_now, heartbeat_age, is_alive_here, read_info
from .recovery import recover_worker

#: Limbo files and temporary records older than this are abandoned.
ABANDONED = 24 * 3600.0


def dead_workers(jar: Jar, config: Config, stale: float | None) -> list[tuple[str, str]]:
    """Workers to recover: ``(name, why)``."""
    found = []
    now = filesystem_now(jar.worker_home) if stale is not None else 0.0
    for worker in jar.workers():
        alive = is_alive_here(jar, worker, config.node)
        if alive is False:
            found.append((worker, "its worker died"))
        elif alive is None and stale is not None and \
                not (jar.worker_dir(worker) / WORKER_EXITED).exists():
            age = heartbeat_age(jar, worker, now)
            if age is not None and age > max(stale, MIN_BEATS * _interval(jar, worker)):
                found.append((worker, f"its worker's heartbeat is {age:.0f} s old"))
    return found


#: ``--stale`` never judges a worker before it missed this many heartbeats.
MIN_BEATS = 2


def _interval(jar: Jar, worker: str) -> float:
    """The heartbeat interval a worker announced in its ``info.yaml`` (default 30 s).

    A ``--stale`` shorter than a couple of intervals would take healthy
    workers for dead ones and put their running jobs back: it is raised.
    """
    try:
        return float(read_info(jar.worker_dir(worker)).get("heartbeat") or 30)
    except (TypeError, ValueError):
        return 30.0


def recover_jobs(stale: float | None = None, jar: Jar | None = None) -> list[dict]:
    """Repair the jar; return one ``{"job"/"path", "action"}`` entry per repair.

    Idempotent, and safe to run on several nodes at once: every repair is one
    rename, and whoever loses a race finds the file gone and moves on.
    """
    config = load()
    jar = jar or Jar.from_config(config)
    if stale is not None and stale < 0:
        from .errors import JobJarError

        raise JobJarError("--stale must be a non-negative number of seconds")
    done: list[dict] = []
    for worker, why in dead_workers(jar, config, stale):
        scratch = jar.worker_dir(worker) / WORKER_SCRATCH
        had_scratch = scratch.exists()
        if held_job(jar.worker_dir(worker)) is None and not os.path.lexists(
                jar.claimed_link(worker)) and not had_scratch:
            continue
        local = is_alive_here(jar, worker, config.node) is False
        for job, action in recover_worker(jar, config, worker, why, local):
            done.append({"job": job, "worker": worker, "action": action})
        if had_scratch and not scratch.exists():
            done.append({"path": f"{jar.worker_home.name}/{worker}/scratch",
                         "action": "removed a dead worker's scratch directory"})
        faults.hit("recover-after-worker")
    done += _dangling_links(jar)
    done += _abandoned_limbo(jar)
    done += _old_temporaries(jar)
    done += _settled_cancels(jar)
    return done


def _dangling_links(jar: Jar) -> list[dict]:
    done = []
    try:
        entries = list(os.scandir(jar.claimed))
    except FileNotFoundError:
        return done
    for entry in entries:
        if entry.is_symlink() and _target_gone(entry.path):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            done.append({"path": f"claimed/{entry.name}", "action": "removed a dangling link"})
    return done


def _target_gone(link: str) -> bool:
    """Is a link's target known to be missing?

    Only "no such file" counts: a link that cannot be followed for another
    reason (sshfs refusing ``..`` targets with EPERM, ESTALE on NFS) may
    belong to a living worker and must be left alone.
    """
    try:
        os.stat(link)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _age(path: str, now: float) -> float:
    try:
        return now - os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _abandoned_limbo(jar: Jar) -> list[dict]:
    """Limbo files a submitter never renamed: set aside, never run (they may be partial)."""
    done = []
    now = filesystem_now(jar.limbo) if jar.limbo.is_dir() else time.time()
    try:
        entries = list(os.scandir(jar.limbo))
    except FileNotFoundError:
        return done
    for entry in entries:
        if _age(entry.path, now) < ABANDONED:
            continue
        target = jar.rejected / entry.name
        record = {"name": entry.name, "status": "rejected", "finished": records.utc_iso(now),
                  "reason": "abandoned in limbo/ for over a day (its submitter never finished "
                            "submitting it)"}
        # The record first: a crash between the two steps then leaves the file in
        # limbo/, where the next run finds it again, never in rejected/ unexplained.
        os.makedirs(jar.results, exist_ok=True)
        records.write(jar.record(entry.name), record)
        faults.hit("recover-limbo")
        try:
            os.makedirs(jar.rejected, exist_ok=True)
            os.rename(entry.path, target)
        except FileNotFoundError:
            continue
        done.append({"job": entry.name, "action": "moved from limbo/ to rejected/"})
    return done


def _old_temporaries(jar: Jar) -> list[dict]:
    done = []
    now = time.time()
    for directory in (jar.results, jar.worker_home):
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp") \
                    and _age(entry.path, now) > ABANDONED:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                done.append({"path": str(Path(directory.name) / entry.name),
                             "action": "removed an abandoned temporary file"})
    return done


def _settled_cancels(jar: Jar) -> list[dict]:
    """Cancel requests whose job already left the jar: finish the record, drop the request."""
    done = []
    try:
        names = os.listdir(jar.cancel)
    except FileNotFoundError:
        return done
    from .find import locate

    for name in names:
        where = locate(name, jar)
        if where is not None and where.state not in ("completed", "rejected"):
            continue
        if where is not None and where.state == "completed" and records.read(
                jar.record(name)) is None:
            records.write(jar.record(name), {
                "name": name, "status": "cancelled", "finished": records.utc_iso(time.time()),
                "reason": "cancelled while queued"})
            done.append({"job": name, "action": "wrote the missing cancelled record"})
        try:
            os.unlink(jar.cancel / name)
        except FileNotFoundError:
            continue
        done.append({"job": name, "action": "removed a settled cancel request"})
    return done

