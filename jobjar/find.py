"""Finding a job by name: where it is now, without a central index.

A job is always in exactly one place (every move is one rename), so looking
in each state directory in turn finds it.  The cost is a handful of ``stat``
calls per category and a ``readlink`` per busy worker, whatever the queue
depth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import files, states
from .layout import WORKER_JOB, Jar, held_category, subdirs


@dataclass
class Location:
    """Where a job is: its state (one of ``states.STATES``), its file, category and worker."""

    state: str
    path: Path | None  # None: a job that has left the jar and whose file is gone
    category: str | None = None
    worker: str | None = None


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def _in_tree(base: Path, name: str) -> tuple[str | None, Path] | None:
    """``base/NAME`` (uncategorized) or ``base/CATEGORY/NAME``, by ``stat``, not by listing."""
    if _exists(base / name) and not files.is_real_dir(base / name):
        return None, base / name
    for category in subdirs(base):
        if _exists(base / category / name):
            return category, base / category / name
    return None


def running_jobs(jar: Jar) -> dict[str, tuple[str, Path]]:
    """Jobs held by workers, from the links in ``claimed/``: name -> (worker, path)."""
    found = {}
    try:
        entries = list(os.scandir(jar.claimed))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return found
    for entry in entries:
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        path = Path(os.path.normpath(jar.claimed / target))
        found[path.name] = (entry.name, path)
    return found


def locate(name: str, jar: Jar | None = None) -> Location | None:
    """Where job ``name`` is now, or ``None`` if it is nowhere in the jar.

    Each state in turn, in ``states.SHOWN`` order (the queue first, limbo last).
    """
    jar = jar or Jar.from_config()
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        return None
    for state in states.SHOWN:
        if state == states.RUNNING:
            where = _held(name, jar)
            if where:
                return where
        elif state in states.IN_JAR:  # a tree: STATE/NAME or STATE/CATEGORY/NAME
            hit = _in_tree(jar.state_dir(state), name)
            if hit:
                return Location(state, hit[1], hit[0])
        elif _exists(jar.state_dir(state) / name):  # flat
            return Location(state, jar.state_dir(state) / name)
    return None


def _held(name: str, jar: Jar) -> Location | None:
    """Job ``name`` held by a worker: by its link in ``claimed/``, else in every ``job/``."""
    running = running_jobs(jar).get(name)
    if running and _exists(running[1]):
        worker_dir = jar.worker_dir(running[0])
        return Location(states.RUNNING, running[1], held_category(worker_dir, running[1]),
                        running[0])
    for worker in jar.workers():  # claimed but not yet linked, or link lost
        hit = _in_tree(jar.worker_dir(worker) / WORKER_JOB, name)
        if hit:
            return Location(states.RUNNING, hit[1], hit[0], worker)
    return None
