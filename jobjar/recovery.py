"""Recovery: put back the jobs that dead workers held, repair half-done moves.

Every repair is one rename whose loser simply finds the file gone, so any
number of copies may run at once, on any nodes, and running it twice changes
nothing the second time.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from . import faults, records
from .config import Config
from .layout import WORKER_SCRATCH, Jar, held_job
from .naming import priority_of, split_worker_name


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def recover_worker(jar: Jar, config: Config, worker: str, why: str,
                   local: bool = False) -> list[tuple[str, str]]:
    """Repair what dead worker ``worker`` left; return ``(job, action)`` pairs.

    A job it finished but had not moved goes to ``completed/``; a job it was
    running goes back where it came from (same category, same name), unless
    it has already been recovered ``JJ_MAX_RECOVERIES`` times: then it is
    recorded ``poisoned`` and moved to ``completed/``.  With ``local`` (a
    worker of this node), what still runs of its job is ended first, so that
    the next attempt never runs beside the lost one.
    """
    done = []
    wdir = jar.worker_dir(worker)
    held = held_job(wdir)
    if held is not None and local:
        ended = end_orphans(jar, config, worker, held[1].name)
        if ended:
            done.append((held[1].name, f"ended {ended} process(es) of the lost attempt"))
    if held is not None:
        category, path = held
        action = _return_job(jar, config, worker, category, path, why)
        if action:
            done.append((path.name, action))
    link = jar.claimed_link(worker)
    if os.path.islink(link):
        _unlink(link)
    shutil.rmtree(wdir / WORKER_SCRATCH, ignore_errors=True)
    for spare in jar.spare_outputs(worker):  # output of the lost attempt, if any
        _unlink(spare)
    return done


def end_orphans(jar: Jar, config: Config, worker: str, job: str) -> int:
    """End what still runs of ``job`` after its worker on this node died; return how many.

    A job runs in a session of its own, so a worker killed by SIGKILL leaves
    it running.  Its processes carry ``JJ_WORKER`` and ``JJ_JOB_NAME`` in
    their environment (the worker sets them for every job): they get
    SIGTERM, then SIGKILL after ``JJ_KILL_GRACE``.  Processes that earlier
    jobs left behind on purpose (another name) and living workers (which may
    have inherited the variables from a job that started them) are spared.
    """
    import psutil

    workers = set()
    for name in jar.workers():
        node, pid = split_worker_name(name)
        if node == config.node and name != worker:
            workers.add(pid)
    mine = os.getpid()
    victims = []
    for proc in psutil.process_iter(["environ"]):
        env = proc.info.get("environ") or {}
        if env.get("JJ_WORKER") == worker and env.get("JJ_JOB_NAME") == job \
                and proc.pid not in workers and proc.pid != mine:
            victims.append(proc)
    count, left = len(victims), victims
    for sig in ("terminate", "kill"):
        for proc in left:
            try:
                getattr(proc, sig)()
            except psutil.Error:
                pass
        _gone, left = psutil.wait_procs(left, timeout=config.kill_grace if sig == "terminate"
                                        else 5)
        if not left:
            break
    return count


def _return_job(jar: Jar, config: Config, worker: str, category: str | None, path: Path,
                why: str) -> str | None:
    name = path.name
    record = records.read(jar.record(name)) or {}
    mine = record.get("worker") == worker
    status = record.get("status")
    if mine and status in records.FINAL:  # ran to the end; only the move was lost
        target = jar.rejected / name if status == "rejected" else jar.completed / name
        action = f"moved to {target.parent.name}/ (it had finished)"
    elif mine and status == records.PENDING:  # a retry whose move back was lost
        target = jar.queue_dir(category) / name
        action = "put back for its next attempt"
    else:
        record = _lost_attempt(record, path, category, worker, why)
        if record["recoveries"] > config.max_recoveries:
            record.update(status="poisoned", finished=records.utc_iso(time.time()),
                          reason=f"its worker died {record['recoveries']} times while running it")
            target = jar.completed / name
            action = "poisoned: moved to completed/"
        else:
            target = jar.queue_dir(category) / name
            action = "put back in " + (f"unclaimed/{category}/" if category else "unclaimed/")
        if not os.path.lexists(path):
            return None  # another recoverer was faster
        records.write(jar.record(name), record)
        faults.hit("recover-after-record")
    try:
        os.makedirs(target.parent, exist_ok=True)
        os.rename(path, target)
    except FileNotFoundError:
        return None
    faults.hit("recover-after-move")
    return action


def _lost_attempt(record: dict, path: Path, category: str | None, worker: str,
                  why: str) -> dict:
    """The record of a job whose worker died running it (every field, as any record)."""
    name = path.name
    record = {**records.blank(name, category, priority_of(name)), **record}
    if not record["submitted"]:  # it died before writing any record: the file tells
        submitted, owner = records.file_facts(path)
        record.update(submitted=records.utc_iso(submitted), submitter=owner)
    if not record["node"]:
        record["node"] = worker.rsplit(".", 1)[0]
    recoveries = int(record.get("recoveries", 0)) + 1
    attempts = list(record.get("attempts", []))
    attempts.append({"worker": worker, "status": "lost", "reason": why,
                     "recovered": records.utc_iso(time.time())})
    # Naming the dead worker makes a second recovery of the same crash (after
    # this one was itself interrupted) a plain move, not another count.
    record.update(recoveries=recoveries, attempts=attempts, status=records.PENDING,
                  reason=f"recovered: {why}", worker=worker)
    return record
