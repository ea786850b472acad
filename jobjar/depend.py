"""Dependencies without a daemon: jobs wait in ``waiting/`` until released.

A job submitted with ``--after`` (all must succeed) or ``--after-any`` (all
must finish, however they ended) waits in ``waiting/[CATEGORY/]NAME``.  Any
worker, after each job and in its idle loop, looks at the waiting jobs and
decides from their dependencies' result records:

* every dependency satisfied: one rename into ``unclaimed/[CATEGORY/]NAME``;
* an ``--after`` dependency ended without succeeding: the job is recorded
  ``dependency-failed`` and moved to ``completed/`` (its own dependents then
  fail the same way, transitively);
* otherwise it keeps waiting.

Many workers may decide at once; the rename lets exactly one of them act.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import directives as jjdir
from . import records
from .layout import Jar

_cache: dict[tuple[str, int], jjdir.Directives | Exception] = {}


def waiting_jobs(jar: Jar) -> list[tuple[str | None, Path]]:
    """Every job in ``waiting/``: ``(category, path)``."""
    found = []
    try:
        top = list(os.scandir(jar.waiting))
    except FileNotFoundError:
        return found
    for entry in top:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            try:
                found.extend((entry.name, Path(e.path)) for e in os.scandir(entry.path)
                             if not e.name.startswith("."))
            except FileNotFoundError:
                pass
        else:
            found.append((None, Path(entry.path)))
    return found


def read_directives(path: Path) -> jjdir.Directives:
    """The directives of a job file (cached by name and modification time)."""
    try:
        key = (str(path), os.stat(path).st_mtime_ns)
    except OSError:
        key = (str(path), 0)
    cached = _cache.get(key)
    if cached is None:
        try:
            with open(path, "rb") as src:
                cached = jjdir.parse(src.read(jjdir.HEAD_BYTES))
        except (OSError, jjdir.DirectiveError) as exc:
            cached = exc
        if len(_cache) > 10000:
            _cache.clear()
        _cache[key] = cached
    if isinstance(cached, Exception):
        raise cached
    return cached


def state(jar: Jar, opts: jjdir.Directives) -> tuple[str, str | None]:
    """``("ready"|"wait"|"failed", reason)`` for a job's dependencies."""
    for dep in opts.after:
        status = records.status_of(jar.record(dep))
        if status == "succeeded":
            continue
        if status in records.FINAL:
            return "failed", f"dependency {dep} ended {status}"
        return "wait", None
    for dep in opts.after_any:
        if records.status_of(jar.record(dep)) not in records.FINAL:
            return "wait", None
    return "ready", None


def fail_record(jar: Jar, path: Path, category: str | None, reason: str, status: str) -> dict:
    """The record of a job that leaves the jar without ever running."""
    name = path.name
    from .naming import priority_of

    prior = records.carried_over(jar.record(name))
    submitted, owner = records.file_facts(path)
    now = time.time()
    return {**records.blank(name, category, priority_of(name)), **prior,
            "submitter": prior.get("submitter") or owner, "status": status, "reason": reason,
            "submitted": prior.get("submitted") or records.utc_iso(submitted),
            "finished": records.utc_iso(now), "attempt": prior.get("attempt", 0)}


def release(jar: Jar, max_passes: int = 50) -> int:
    """Release or fail every waiting job whose dependencies are settled.

    Repeats while it makes progress, so a chain of failures settles in one
    call.  Returns how many jobs it moved.
    """
    moved = 0
    for _ in range(max_passes):
        progress = 0
        for category, path in waiting_jobs(jar):
            status = "dependency-failed"
            try:
                opts = read_directives(path)
                verdict, reason = state(jar, opts)
            except FileNotFoundError:
                continue
            except (OSError, jjdir.DirectiveError) as exc:
                verdict, reason, status = "failed", f"bad directive: {exc}", "failed"
            if verdict == "wait":
                continue
            if verdict == "ready":
                target = jar.queue_dir(category) / path.name
                os.makedirs(target.parent, exist_ok=True)
            else:
                if not os.path.lexists(path):
                    continue
                records.write(jar.record(path.name),
                              fail_record(jar, path, category, reason, status))
                target = jar.completed / path.name
            try:
                os.rename(path, target)
            except OSError:
                continue  # another worker acted first
            progress += 1
        moved += progress
        if not progress:
            break
    return moved
