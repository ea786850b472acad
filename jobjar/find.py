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
from .errors import JobJarError
from .layout import WORKER_JOB, Jar, held_category, jobs_in, subdirs


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


# -- handles: a unique prefix, an identifier, a batch ---------------------------
#
# Every command and function that takes job names resolves them here
# (``select``), so that ``cancel_job 2026113`` and ``jobjar.wait("2026113")``
# mean the same job, and ``-i``/``--batch`` select the same ones everywhere.


class AmbiguousName(JobJarError):
    """A prefix that starts the names of several jobs: refused, with the candidates."""


#: How many candidates an ambiguous prefix names before "and N more".
SHOWN_CANDIDATES = 5
#: The largest batch manifest read (a forged one must not exhaust memory).
MAX_MANIFEST_BYTES = 64 * 2**20


def known_names(jar: Jar, finished: bool = True) -> set[str]:
    """The name of every job the jar knows: in it, and (``finished``) finished ones.

    One listing per directory (``waiting/``, ``unclaimed/`` and their
    categories, ``claimed/``, and with ``finished`` ``completed/``,
    ``rejected/`` and ``results/``): never a file read.  Only called when a
    handle is not an exact name, so the common case costs nothing more.
    """
    found = {path.name for state in (states.WAITING, states.UNCLAIMED)
             for _, path in jobs_in(jar.state_dir(state))}
    found.update(running_jobs(jar))
    if finished:
        for state in states.LEFT:
            found.update(_listing(jar.state_dir(state)))
        found.update(n[:-5] for n in _listing(jar.results) if n.endswith(".yaml"))
    return {name for name in found if not name.startswith(".")}


def _listing(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _exact(name: str, jar: Jar) -> bool:
    """Whether some job is called exactly ``name`` (in the jar, or with a record)."""
    return locate(name, jar) is not None or os.path.lexists(jar.record(name))


def resolve(handle: str, jar: Jar, finished: bool = True) -> str:
    """The job a handle names: an exact name always wins, else the one job it starts.

    A handle that starts no job's name is returned as it is, so that the
    caller says "no job named ..." as it always did; one that starts
    several raises ``AmbiguousName`` listing them.
    """
    if not handle or "/" in handle or "\x00" in handle or _exact(handle, jar):
        return handle
    matches = sorted(n for n in known_names(jar, finished) if n.startswith(handle))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        from .naming import printable

        listed = ", ".join(matches[:SHOWN_CANDIDATES])
        more = len(matches) - SHOWN_CANDIDATES
        listed += f" and {more} more" if more > 0 else ""
        raise AmbiguousName(printable(f"{handle!r} starts the names of {len(matches)} jobs: "
                                      f"{listed}; give more of the name"))
    return handle


def _has_identifier(name: str, ident: str) -> bool:
    """Whether ``name`` is ``STAMP-LOGIN-NODE-PID-N-IDENT.PRIORITY`` (``naming.unique_name``)."""
    stem, dot, priority = name.rpartition(".")
    if not dot or not stem.endswith("-" + ident):
        return False
    head = stem[: -len(ident) - 1].split("-")  # STAMP, LOGIN, NODE..., PID, N
    return len(head) >= 5 and head[-1].isdigit() and head[-2].isdigit()


def with_identifier(ident: str, jar: Jar, finished: bool = True) -> list[str]:
    """The jobs submitted with identifier ``ident`` (``submit_job -i``), oldest first."""
    from .naming import check_word

    check_word("identifier", ident)
    found = sorted(n for n in known_names(jar, finished) if _has_identifier(n, ident))
    if not found:
        raise JobJarError(f"no job with identifier {ident!r} in {jar.home}")
    return found


def batch_manifest(batch: str, jar: Jar) -> str:
    """The text of batch ``batch``'s manifest; a malformed or unknown id is a one-line error."""
    from .directives import DirectiveError, check_batch

    try:
        check_batch(batch)
    except DirectiveError as exc:
        raise JobJarError(str(exc)) from None
    text = read_manifest(jar.batch_file(batch))
    if text is None:
        raise JobJarError(f"no batch {batch!r} in {jar.home}")
    return text


def batch_jobs(batch: str, jar: Jar) -> list[str]:
    """The jobs of batch ``batch``, in submission order, from its manifest ``batches/ID``.

    The manifest is anyone's file (whoever may submit may write
    ``batches/``): a name is kept only if its job carries the batch itself,
    in its file's ``#JJ --batch`` line, or, once the file is gone, in its
    record.  A forged manifest cannot make ``cancel_job --batch`` act on
    other jobs.
    """
    from .directives import DirectiveError, check_job_name

    text = batch_manifest(batch, jar)
    paths = _job_paths(jar)
    names = []
    for line in dict.fromkeys(text.split("\n")):
        try:
            name = check_job_name(line)
        except DirectiveError:
            continue
        if _carries(name, batch, jar, paths.get(name)):
            names.append(name)
    return names


def _job_paths(jar: Jar) -> dict[str, Path]:
    """Every job file in the jar and in ``completed/``, ``rejected/``: name -> path.

    One listing per directory, so that checking a batch of 100,000 jobs is
    not 100,000 lookups of each state directory.
    """
    found = {path.name: path for state in (states.WAITING, states.UNCLAIMED)
             for _, path in jobs_in(jar.state_dir(state))}
    for state in states.LEFT:
        found.update((name, jar.state_dir(state) / name) for name in _listing(jar.state_dir(state)))
    found.update((name, path) for name, (_, path) in running_jobs(jar).items())
    return found


def read_manifest(path: Path) -> str | None:
    """A manifest's text: a regular file, never through a link, bounded; ``None`` if none."""
    from .files import read_regular

    data = read_regular(path, MAX_MANIFEST_BYTES)
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _carries(name: str, batch: str, jar: Jar, path: Path | None) -> bool:
    """Whether job ``name`` says it belongs to ``batch``: its file at ``path``, else its record.

    (A job that moved since ``path`` was listed is looked up again.)
    """
    from . import records

    if path is None or not os.path.lexists(path):
        where = locate(name, jar)
        path = where.path if where is not None else None
    if path is not None:
        return records.batch_of(path) == batch
    record = records.read(jar.record(name))
    return bool(record) and record.get("batch") == batch


def select(names=(), jar: Jar | None = None, batch: str | None = None,
           ident: str | None = None, finished: bool = True) -> list[str]:
    """The jobs named by handles, a batch and an identifier, each once, in order.

    THE resolver of job names: every command and API function that takes
    names calls it.  Handles are exact names or unique prefixes
    (``resolve``); ``batch`` adds the jobs of a batch (``batch_jobs``),
    ``ident`` those submitted with that identifier (``with_identifier``);
    ``finished=False`` looks for prefixes and identifiers only among jobs
    still in the jar.
    """
    jar = jar or Jar.from_config()
    chosen = [resolve(handle, jar, finished) for handle in names]
    if batch is not None:
        chosen += batch_jobs(batch, jar)
    if ident is not None:
        chosen += with_identifier(ident, jar, finished)
    return list(dict.fromkeys(chosen))
