"""``check_workers``: keep ``JJ_MAX_WORKERS`` workers running on this node.

Cron runs it every few minutes, so workers come back after a reboot or a
crash.  Only this node's workers are counted, and only those whose process
is really theirs (see ``liveness``).  Directories of long-dead workers can be
pruned; one that still holds a job is left for ``recover_jobs``.
"""

from __future__ import annotations

import os
import shutil
import time

from .config import load
from .layout import STOP_ALL, WORKER_EXITED, WORKER_HEARTBEAT, Jar, held_job
from .liveness import is_alive_here


def live_workers(jar: Jar, node: str) -> list[str]:
    """This node's workers that are alive now."""
    return [w for w in jar.workers() if is_alive_here(jar, w, node)]


def check_workers(prune_older_than: float | None = None, start: bool = True) -> dict:
    """Start workers until this node runs ``JJ_MAX_WORKERS``; report what was done.

    Returns ``{"node", "max_workers", "alive", "started", "pruned", "stop_all"}``.
    With ``STOP_ALL`` present nothing is started (new workers would exit at once).
    """
    config = load()
    jar = Jar.from_config(config)
    jar.ensure()
    alive = live_workers(jar, config.node)
    report = {"node": config.node, "max_workers": config.max_workers, "alive": alive,
              "started": [], "pruned": [], "stop_all": (jar.worker_home / STOP_ALL).exists()}
    if prune_older_than is not None:
        report["pruned"] = prune(jar, config.node, prune_older_than)
    if report["stop_all"] or not start:
        return report
    from .launch import start_worker

    for _ in range(config.max_workers - len(alive)):
        report["started"].append(start_worker())
    return report


def prune(jar: Jar, node: str, older_than: float) -> list[str]:
    """Remove this node's dead workers' directories untouched for ``older_than`` seconds."""
    pruned = []
    now = time.time()
    for worker in jar.workers():
        wdir = jar.worker_dir(worker)
        if is_alive_here(jar, worker, node) is not False or held_job(wdir) is not None:
            continue
        newest = max((_mtime(wdir / f) for f in (WORKER_HEARTBEAT, WORKER_EXITED, "log")),
                     default=0.0)
        if now - newest < older_than:
            continue
        if os.path.lexists(jar.claimed_link(worker)):
            continue
        shutil.rmtree(wdir, ignore_errors=True)
        for spare in jar.spare_outputs(worker):
            try:
                os.unlink(spare)
            except FileNotFoundError:
                pass
        pruned.append(worker)
    return pruned


def _mtime(path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
