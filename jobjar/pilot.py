"""Pilot workers: workers that end by themselves, for a slot of another scheduler's time.

A worker inside a Slurm job, a cloud instance or any allocation that ends
must leave before its time is up and should not sit idle once the work is
done.  Three limits, given to ``start_worker`` (command or Python):

* ``exit_when_empty``: end, between jobs as ``STOP`` does, once the worker
  finds nothing it may claim now (under every rule that holds jobs back:
  ``claim`` is the judge) and no job waiting in ``waiting/`` for one of its
  categories can still become claimable (``waiting_hope``);
* ``max_jobs``: end after that many jobs;
* ``max_time``: never claim a job that would run past the time: a job with
  a ``--timeout`` is claimed only if that timeout fits in the time left, a
  job without one only while time is left (if the scheduler then kills the
  pilot, ``recover_jobs`` puts the job back, as for any dead worker).

The worker writes why it stopped in its log (``stop: ...``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from . import records, states
from .errors import JobJarError
from .layout import Jar, jobs_in


class Limits(NamedTuple):
    """When a pilot worker ends by itself (the defaults: never)."""

    exit_when_empty: bool = False
    max_jobs: int | None = None
    max_time: float | None = None

    def __bool__(self) -> bool:
        return self.exit_when_empty or self.max_jobs is not None or self.max_time is not None

    def describe(self) -> str:
        """``exit-when-empty max-jobs=3 max-time=600s``, for the worker's log."""
        parts = ["exit-when-empty"] if self.exit_when_empty else []
        if self.max_jobs is not None:
            parts.append(f"max-jobs={self.max_jobs}")
        if self.max_time is not None:
            parts.append(f"max-time={self.max_time:g}s")
        return " ".join(parts)

    def argv(self) -> list[str]:
        """These limits as the options of a detached worker's command line (``parse``)."""
        out = ["--exit-when-empty"] if self.exit_when_empty else []
        if self.max_jobs is not None:
            out += ["--max-jobs", str(self.max_jobs)]
        if self.max_time is not None:
            out += ["--max-time", repr(self.max_time)]
        return out


def limits(exit_when_empty: bool = False, max_jobs: int | str | None = None,
           max_time: float | str | None = None) -> Limits:
    """Check the limits (the same for the command and for Python); a bad one is a JobJarError.

    ``max_jobs``: a positive integer; ``max_time``: a duration in
    ``config.duration``'s spelling (``90``, ``15m``, ``1d12h``) or seconds.
    """
    from .config import MAX_OPTION_SECONDS, seconds

    jobs = None
    if max_jobs is not None:
        text = str(max_jobs).strip()
        if isinstance(max_jobs, bool) or not text.isascii() or not text.isdigit() \
                or not 0 < int(text) <= 10**9:
            raise JobJarError(f"--max-jobs must be a positive integer, not {max_jobs!r}")
        jobs = int(text)
    time_limit = None
    if max_time is not None:
        try:
            time_limit = seconds(max_time, MAX_OPTION_SECONDS)
        except ValueError as exc:
            raise JobJarError(f"--max-time {exc}, not {max_time!r}") from None
        if time_limit == 0:
            raise JobJarError("--max-time must be longer than 0 s")
    return Limits(bool(exit_when_empty), jobs, time_limit)


def parse(argv: list[str]) -> tuple[Limits, list[str]]:
    """Split a detached worker's arguments (``Limits.argv`` + categories) again."""
    exit_when_empty, max_jobs, max_time = False, None, None
    rest = list(argv)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if flag == "--":
            break
        if flag == "--exit-when-empty":
            exit_when_empty = True
        elif flag == "--max-jobs" and rest:
            max_jobs = rest.pop(0)
        elif flag == "--max-time" and rest:
            max_time = rest.pop(0)
        else:
            raise JobJarError(f"unknown worker option {flag!r}")
    return limits(exit_when_empty, max_jobs, max_time), rest


class Pilot:
    """The limits of one running worker and how far it got."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.jobs = 0
        self.deadline = None if limits.max_time is None else time.monotonic() + limits.max_time
        self.ready_seen: set[str] = set()  # waiting jobs seen releasable (``waiting_hope``)

    def left(self) -> float | None:
        """Seconds until ``max_time`` (``None``: no limit)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def done(self) -> str | None:
        """Why the worker must stop before its next claim, or ``None``."""
        if self.limits.max_jobs is not None and self.jobs >= self.limits.max_jobs:
            return f"max-jobs: ran {self.jobs} job{'s' if self.jobs != 1 else ''}"
        left = self.left()
        if left is not None and left <= 0:
            return f"max-time: {self.limits.max_time:g} s are up"
        return None

    def fits(self, path: Path) -> bool:
        """May a job be claimed with the time left?  Its ``--timeout`` must fit.

        Read from the queued file before the claim (a job that does not fit
        is never moved).  A job whose directives cannot be read is claimed:
        the worker records why it fails, as for any worker.
        """
        left = self.left()
        if left is None:
            return True
        if left <= 0:
            return False
        from .depend import read_directives

        try:
            timeout = read_directives(path).timeout
        except Exception:  # someone's file: the worker's claim deals with it
            return True
        return timeout is None or timeout <= left


def waiting_hope(jar: Jar, categories: list[str | None],
                 log: Callable[[str], None] | None = None,
                 ready_seen: set[str] | None = None) -> str | None:
    """A job waiting for one of ``categories`` that may still become claimable, or ``None``.

    (``None`` in ``categories``: uncategorized jobs.)  A waiting job may
    still become claimable when each of its unfinished dependencies is
    somewhere it can still finish from: queued, running, or itself waiting
    on jobs that can (followed through ``waiting/``).  A dependency that is
    nowhere in the jar (a hand-made name, a job whose files were removed)
    can never finish: such a waiting job keeps no pilot alive, and ``log``
    says so once per call.  A job whose dependencies have all ended should
    have been released by the worker's last look; one seen so twice in a
    row (``ready_seen``, kept by the caller) is one release cannot move (a
    queue it may not enter): it keeps no pilot alive either.
    """
    wanted = set(categories)
    hopeless: list[str] = []
    memo: dict[str, bool] = {}
    ready_seen = set() if ready_seen is None else ready_seen
    ready_now = set()
    for category, path in jobs_in(jar.waiting):
        if category not in wanted:
            continue
        if _can_start(jar, path, memo, set()):
            if not _settled(jar, path):
                return path.name
            ready_now.add(path.name)
            if path.name not in ready_seen:
                ready_seen.add(path.name)
                return path.name
        hopeless.append(path.name)
    ready_seen &= ready_now
    if hopeless and log:
        shown = ", ".join(hopeless[:3]) + (f" and {len(hopeless) - 3} more" if hopeless[3:] else "")
        log(f"waiting jobs that can never start (a dependency that is nowhere in the jar, "
            f"or a release that keeps failing): {shown}")
    return None


def _settled(jar: Jar, path: Path) -> bool:
    """Have all the dependencies of the waiting job at ``path`` ended?"""
    from .depend import read_directives

    try:
        deps = read_directives(path).dependencies
    except Exception:
        return False
    return all(records.status_of(jar.record(dep)) in states.FINAL for dep in deps)


def _can_start(jar: Jar, path: Path, memo: dict[str, bool], seen: set[str]) -> bool:
    """Can the waiting job at ``path`` still be released?  Its dependencies decide."""
    from .depend import read_directives

    name = path.name
    if name in memo:
        return memo[name]
    if name in seen:  # a ring: depend.break_rings fails it
        return False
    seen.add(name)
    try:
        opts = read_directives(path)
    except Exception:  # a bad file: the next release sets it aside
        memo[name] = True
        return True
    result = True
    for dep in opts.dependencies:
        if records.status_of(jar.record(dep)) in states.FINAL:
            continue  # settled: the next release decides
        if not _can_finish(jar, dep, memo, seen):
            result = False
            break
    memo[name] = result
    return result


def _can_finish(jar: Jar, name: str, memo: dict[str, bool], seen: set[str]) -> bool:
    """Is job ``name`` somewhere it can still end from (queued, running, limbo, waiting)?"""
    from .find import locate

    where = locate(name, jar)
    if where is None or where.state in states.LEFT:
        return False
    if where.state == states.WAITING and where.path is not None:
        return _can_start(jar, where.path, memo, seen)
    return True
