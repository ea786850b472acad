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

from .layout import WORKER_JOB, Jar


@dataclass
class Location:
    """Where a job is: its state, its file, its category and its worker."""

    state: str  # limbo, waiting, unclaimed, running, completed, rejected
    path: Path
    category: str | None = None
    worker: str | None = None


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def _in_tree(base: Path, name: str, categories: list[str]) -> tuple[str | None, Path] | None:
    if _exists(base / name) and not (base / name).is_dir():
        return None, base / name
    for category in categories:
        if _exists(base / category / name):
            return category, base / category / name
    return None


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def running_jobs(jar: Jar) -> dict[str, tuple[str, Path]]:
    """Jobs held by workers, from the links in ``claimed/``: name -> (worker, path)."""
    found = {}
    try:
        entries = list(os.scandir(jar.claimed))
    except FileNotFoundError:
        return found
    for entry in entries:
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        path = Path(os.path.normpath(jar.claimed / target))
        found[path.name] = (entry.name, path)
    return found


def held_category(jar: Jar, worker: str, path: Path) -> str | None:
    """The category of a job a worker holds at ``path`` (``job/C/N``; ``None`` for ``job/N``).

    Read from the path below the worker's ``job/``, never from the parent's
    name alone: a category may itself be called ``job``.
    """
    base = os.path.normpath(jar.worker_dir(worker) / WORKER_JOB)
    parts = os.path.relpath(os.path.normpath(path), base).split(os.sep)
    return parts[0] if len(parts) == 2 else None


def locate(name: str, jar: Jar | None = None) -> Location | None:
    """Where job ``name`` is now, or ``None`` if it is nowhere in the jar."""
    jar = jar or Jar.from_config()
    if not name or "/" in name or name in (".", ".."):
        return None
    hit = _in_tree(jar.unclaimed, name, _subdirs(jar.unclaimed))
    if hit:
        return Location("unclaimed", hit[1], hit[0])
    hit = _in_tree(jar.waiting, name, _subdirs(jar.waiting))
    if hit:
        return Location("waiting", hit[1], hit[0])
    running = running_jobs(jar).get(name)
    if running and _exists(running[1]):
        category = held_category(jar, running[0], running[1])
        return Location("running", running[1], category, running[0])
    for worker in jar.workers():  # claimed but not yet linked, or link lost
        base = jar.worker_dir(worker) / WORKER_JOB
        hit = _in_tree(base, name, _subdirs(base))
        if hit:
            return Location("running", hit[1], hit[0], worker)
    for state in ("completed", "rejected", "limbo"):
        path = getattr(jar, state) / name
        if _exists(path):
            return Location(state, path)
    return None
