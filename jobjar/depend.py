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

A job that names itself as a dependency, or waits for jobs that wait for
it (a ring of hand-made files), would wait forever: it fails at once.
Whoever can write ``waiting/`` can put a job there for a category they may
not submit to: a job is released only if its file's owner could have
written the queue it goes to (``access.may_write``, the rule
that recovery applies to ``workers/`` and workers apply when they
claim); anything else goes to ``rejected/``.

Many workers may decide at once; the rename lets exactly one of them act.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from . import directives as jjdir
from . import files, records, states
from .access import may_write
from .layout import Jar, jobs_in
from .naming import priority_of

_cache: dict[tuple[str, int], jjdir.Directives | Exception] = {}


class NotAJob(Exception):
    """A waiting entry that is not a regular file (a link, a fifo, a directory)."""


def read_head(path: Path) -> bytes:
    """The first ``HEAD_BYTES`` of a job file, never through a link, never blocking.

    Anyone may put a fifo or a link where a job is expected: opening a fifo
    for reading would block the worker for good, so the file is opened
    non-blocking, without following a link, and must be a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAJob("a symbolic link (never followed out of the jar)") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAJob("not a regular file")
        return os.read(fd, jjdir.HEAD_BYTES)
    finally:
        os.close(fd)


def read_directives(path: Path) -> jjdir.Directives:
    """The directives of a job file (cached by name and modification time)."""
    try:
        key = (str(path), os.stat(path).st_mtime_ns)
    except OSError:
        key = (str(path), 0)
    cached = _cache.get(key)
    if cached is None:
        try:
            cached = jjdir.parse(read_head(path))
        except Exception as exc:  # OSError, DirectiveError, or a bug the file triggers
            cached = exc
        if len(_cache) > 10000:
            _cache.clear()
        _cache[key] = cached
    if isinstance(cached, Exception):
        raise cached
    return cached


def state(jar: Jar, opts: jjdir.Directives, name: str | None = None) -> tuple[str, str | None]:
    """``("ready"|"wait"|"failed", reason)`` for the dependencies of job ``name``.

    A job that depends on itself (a hand-made file) can never start: it fails.
    """
    if name is not None and (name in opts.after or name in opts.after_any):
        return "failed", "it depends on itself"
    for dep in opts.after:
        status = records.status_of(jar.record(dep))
        if status == states.SUCCEEDED:
            continue
        if status in states.FINAL:
            return "failed", f"dependency {dep} ended {status}"
        return "wait", None
    for dep in opts.after_any:
        if records.status_of(jar.record(dep)) not in states.FINAL:
            return "wait", None
    return "ready", None


def directive_problem(exc: Exception) -> str:
    """The reason recorded for a job whose directives cannot be read or understood."""
    if isinstance(exc, jjdir.DirectiveError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"bad directive: cannot read the job file: {exc.strerror or exc}"
    return f"bad directive: {exc}"


def release(jar: Jar, max_passes: int = 50, log: Callable[[str], None] | None = None) -> int:
    """Release or fail every waiting job whose dependencies are settled.

    Repeats while it makes progress, so a chain of failures settles in one
    call.  Returns how many jobs it moved.  Anyone may write ``waiting/``,
    so one entry that cannot be handled (a malformed directive, a directory
    we may not use) is set aside or skipped, and ``log``-ged: it never stops
    the caller, a worker of the jar.
    """
    moved = 0
    for _ in range(max_passes):
        progress = 0
        waits: dict[str, tuple[str | None, Path, jjdir.Directives]] = {}
        for category, path in jobs_in(jar.waiting):
            try:
                progress += settle(jar, category, path, waits)
            except Exception as exc:  # anything: one entry must not stop every worker
                if log:
                    log(f"cannot release waiting job {path.name}: {type(exc).__name__}: {exc}")
        if not progress and waits:
            progress = break_rings(jar, waits, log)
        moved += progress
        if not progress:
            break
    return moved


def break_rings(jar: Jar, waits: dict[str, tuple[str | None, Path, jjdir.Directives]],
                log: Callable[[str], None] | None = None) -> int:
    """Fail the waiting jobs that wait for each other in a ring; how many moved.

    ``a`` after ``b`` and ``b`` after ``a`` (hand-made files) would wait
    forever: each is recorded ``dependency-failed``, and what waits for
    them then fails (or, ``--after-any``, runs) as for any failed
    dependency.  ``waits``: the jobs still waiting, by name.
    """
    graph = {name: [dep for dep in opts.dependencies if dep in waits and dep != name
                    and records.status_of(jar.record(dep)) not in states.FINAL]
             for name, (_, _, opts) in waits.items()}
    moved = 0
    for ring in rings(graph):
        for name in ring:
            others = [n for n in ring if n != name]
            listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if others[3:] else "")
            category, path, _ = waits[name]
            try:
                moved += finish(jar, category, path, states.DEPENDENCY_FAILED,
                                f"it depends on itself (through {listed})")
            except Exception as exc:  # one entry must not stop the others
                if log:
                    log(f"cannot fail waiting job {name}: {type(exc).__name__}: {exc}")
    return moved


def rings(graph: dict[str, list[str]]) -> list[list[str]]:
    """The cycles of a dependency graph: its strongly connected parts of two or more.

    Tarjan's algorithm, without recursion (a chain of thousands of waiting
    jobs must not exhaust Python's stack).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            dep = next(deps, None)
            if dep is not None:
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(graph.get(dep, ()))))
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    found.append(part)
    return found


def settle(jar: Jar, category: str | None, path: Path,
           waits: dict[str, tuple[str | None, Path, jjdir.Directives]] | None = None) -> int:
    """Move one waiting job on if its dependencies allow it; 1 if it moved.

    A job that stays is added to ``waits`` (for ``break_rings``).
    """
    status = states.DEPENDENCY_FAILED
    try:
        opts = read_directives(path)
        verdict, reason = state(jar, opts, path.name)
    except FileNotFoundError:
        return 0
    except NotAJob as exc:  # set aside, as a worker sets aside what it cannot run
        verdict, reason, status = "failed", str(exc), states.REJECTED
    except Exception as exc:  # someone's file: any parse error fails the job, not us
        reason = directive_problem(exc)
        if not reason.startswith("bad directive"):
            reason = f"bad directive: {reason}"
        verdict, status = "failed", states.FAILED
    if verdict == "wait":
        if waits is not None:
            waits[path.name] = (category, path, opts)
        return 0
    if verdict == "ready":
        return release_one(jar, category, path)
    return finish(jar, category, path, status, reason)


def release_one(jar: Jar, category: str | None, path: Path) -> int:
    """Rename a ready job into its queue if its owner could have put it there; 1 if moved.

    The check is made again on what landed: someone who can write
    ``waiting/`` may swap the name between the check and the rename, but
    not the entry in the queue, a directory they cannot write.
    """
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return 0
    refusal = queue_refusal(jar, category, before.st_uid)
    if refusal:
        return finish(jar, category, path, states.REJECTED, refusal)
    target = jar.queue_dir(category) / path.name
    try:
        files.rename_into(path, target)
    except OSError:
        return 0  # another worker acted first
    try:
        landed = os.lstat(target)
    except FileNotFoundError:
        return 1  # claimed already
    if (landed.st_dev, landed.st_ino) != (before.st_dev, before.st_ino):
        refusal = queue_refusal(jar, category, landed.st_uid)
        if refusal:
            finish(jar, category, target, states.REJECTED, refusal)
    return 1


def queue_refusal(jar: Jar, category: str | None, owner: int) -> str | None:
    """Why a waiting job of user ``owner`` must not enter its queue (``None``: it may).

    ``waiting/CAT`` may be writable by more people than ``unclaimed/CAT``
    (and anyone who can write ``waiting/`` can make ``waiting/CAT``):
    releasing such a job would launder it into a queue its owner may not use.
    """
    if may_write(owner, jar.queue_dir(category)):
        return None
    queue = f"unclaimed/{category}" if category else "unclaimed/"
    return (f"its owner ({records.owner_name(owner)}) may not submit to {queue}; "
            "it was put in waiting/ instead")


def finish(jar: Jar, category: str | None, path: Path, status: str, reason: str | None) -> int:
    """Record a job that leaves the jar without running and move it on; 1 if it moved."""
    if not os.path.lexists(path):
        return 0
    record = records.never_ran(path, category, priority_of(path.name), status, reason,
                               time.time(), records.carried_over(jar.record(path.name)))
    records.write(jar.record(path.name), record)
    target = jar.state_dir(states.final_state(status)) / path.name
    try:
        files.rename_into(path, target)
    except OSError:
        return 0  # another worker acted first
    return 1
