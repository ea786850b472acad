"""``purge_jobs``: remove finished jobs older than a duration, so that history stays bounded.

A finished job is three things: its file in ``completed/`` (or ``rejected/``),
its record ``results/NAME.yaml`` and its default output ``output/NAME.out``
and ``NAME.err`` (and the INI copy ``ini/NAME.ini`` of a ``--ini`` job).
Output a job sent elsewhere (``--output FILE``) is the user's and stays.
A job's age is that of its record (written once, when it finished; a
``rename`` into ``completed/`` keeps the file's own time, so the file's
``ctime`` stands in where the record is missing).  A batch's manifest
``batches/ID`` goes once it is older than the duration too and none of
the jobs it names is left: not in the jar, not in ``completed/`` or
``rejected/``, no record.

Two things are never removed:

* anything of a job still in the jar (waiting, unclaimed, running, in limbo):
  a name back in the jar (``resubmit_job``) has a ``retrying`` record, and
  only records with a final status (``states.FINAL``) go;
* the record of a job named by a dependency (``--after``, ``--after-any``)
  of a job still in the jar: ``depend.state`` decides from that record, and
  without it the dependent would wait for ever.  A queued or running job
  needs them too (a worker checks the dependencies again when it claims a
  job, and a retry goes back to the queue), so every job in the jar has its
  head read: this costs one small read per queued job, once per purge.

Steps, each safe to interrupt: the job file first, then its output, then
its record, so a purge cut short leaves a record without its file (which
``job_info`` shows, and the next purge removes: it also walks ``results/``
for records whose job file is gone).

Why it is fast (``docs/performance.md``): each directory is listed once
(``output/`` and ``ini/`` too, so that only files that exist are unlinked),
every removal goes through the descriptor of its directory (``dir_fd``: no
path walked per call, and no link followed at ``results/`` or
``completed/``), only a record's ``status:`` line is decoded, and the jobs
are removed by a few threads at once.  An unlink waits for the filesystem
(freeing blocks on a local disk, a round trip to the server on NFS) and
releases the interpreter meanwhile, so ``THREADS`` unlinks overlap; on the
benchmark's disk (ext4 mounted with ``discard``: each unlink waits for its
blocks' discard) that took 100,000 jobs from about a minute to about 15 s.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from . import files, records, states
from .errors import JobJarError
from .layout import BATCHES, INI_COPIES, WORKER_JOB, Jar, jobs_in

__all__ = ["purge_jobs"]

#: Jobs removed at once.  Each thread spends its time waiting in ``unlink``
#: (the interpreter is released there).  Measured on a local disk: 4 and 8 cut
#: the time by 3 to 5, 16 saved a little more at a third more CPU, 32 and 64
#: were slower; an NFS client keeps about as many requests in flight.
THREADS = 8
#: Jobs handed to a thread at a time: small enough to spread a small purge over
#: the threads, large enough that handing them out costs nothing.
MAX_CHUNK = 512

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)
#: ``status: VALUE`` lines as workers write them, and the status each one means.
_STATUS_LINES = {f'"{s}"': s for s in (*states.FINAL, states.PENDING)}


def _in_jar(jar: Jar) -> list[tuple[str | None, object]]:
    """``(category, path)`` of every job still in the jar, limbo and workers' hands included."""
    found = jobs_in(jar.waiting) + jobs_in(jar.unclaimed)
    for worker in jar.workers():
        found += jobs_in(jar.worker_dir(worker) / WORKER_JOB)
    try:
        found += [(None, jar.limbo / n) for n in os.listdir(jar.limbo) if not n.startswith(".")]
    except OSError:
        pass
    return found


def needed(jar: Jar, jobs: list | None = None) -> set[str]:
    """Names of the jobs whose records a job still in the jar depends on."""
    from .depend import read_directives

    names: set[str] = set()
    for _category, path in _in_jar(jar) if jobs is None else jobs:
        try:
            opts = read_directives(path)
        except Exception:  # noqa: BLE001 - anyone's file: unreadable means no dependency we know
            continue
        names.update(opts.after)
        names.update(opts.after_any)
    return names


class _Dirs:
    """The jar's directories a purge works in, each opened once, never through a link.

    ``fd[NAME]`` is the descriptor of ``NAME/`` (``None``: missing, or not a
    real directory: someone's link there is not followed, and what it points
    to is not purged).  Every lookup and unlink is relative to one of them.
    """

    NAMES = (*states.LEFT, "results", "output", INI_COPIES, BATCHES)

    def __init__(self, jar: Jar) -> None:
        self.jar = jar
        self.fd: dict[str, int | None] = {}
        for name in self.NAMES:
            try:
                self.fd[name] = os.open(jar.home / name, _DIR_FLAGS)
            except FileNotFoundError:
                self.fd[name] = None
            except OSError as exc:
                if name == "results":  # job files would go without their status read
                    self.close()
                    raise JobJarError(f"cannot purge: {jar.home / name} is not a directory "
                                      f"one may read ({exc.strerror or exc})") from None
                self.fd[name] = None

    def close(self) -> None:
        for fd in self.fd.values():
            if fd is not None:
                os.close(fd)
        self.fd = {}

    def entries(self, name: str) -> list[os.DirEntry]:
        """The entries of ``name/`` but dot-names (work files, others' hidden files)."""
        fd = self.fd.get(name)
        if fd is None:
            return []
        try:
            with os.scandir(fd) as found:
                return [e for e in found if not e.name.startswith(".")]
        except OSError:
            return []

    def names(self, name: str) -> set[str]:
        return {e.name for e in self.entries(name)}


@contextmanager
def _opened(jar: Jar) -> Iterator[_Dirs]:
    dirs = _Dirs(jar)
    try:
        yield dirs
    finally:
        dirs.close()


class _Job(NamedTuple):
    """A finished job as the listings show it."""

    name: str
    state: str | None  # completed or rejected: where its file is; None: a record alone
    is_dir: bool       # its file is a directory (a bad job set aside in rejected/)
    recorded: bool     # results/ listed its record


def _read(fd: int | None, name: str, limit: int, owned: bool = False) -> bytes | None:
    """``files.read_regular`` of ``name`` in a directory, through the directory's descriptor.

    A regular file of at most ``limit`` bytes, never through a link, never
    blocking on a fifo; else ``None``.  ``owned`` (its ``lstat`` says it is
    ours, or we are root): read with ``O_NOATIME``, which only the owner may
    ask for, so that reading it does not dirty its inode (a journal write)
    just before it goes.
    """
    if fd is None:
        return None
    try:
        handle = os.open(name, _READ_FLAGS | (_NOATIME if owned else 0), dir_fd=fd)
    except PermissionError as exc:
        if owned and exc.errno == errno.EPERM:  # given away since the lstat
            return _read(fd, name, limit)
        return None
    except OSError:
        return None
    return files.read_fd(handle, limit)


def _status(dirs: _Dirs, name: str, owned: bool = False) -> str | None:
    """``records.status_of`` the record of ``name``, decoding only its last ``status:`` line.

    A line as workers write it (``status: "failed"``) is looked up; anything
    else (a record edited by hand) is left to ``records.status_of``, so both
    always agree.
    """
    data = _read(dirs.fd["results"], f"{name}.yaml", records.MAX_BYTES, owned)
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # as records.status_of: not a record of ours
    at = text.rfind("\nstatus: ")
    if at >= 0:
        end = text.find("\n", at + 1)
        found = _STATUS_LINES.get(text[at + 9:] if end < 0 else text[at + 9:end])
        if found is not None:
            return found
    return records.status_of(dirs.jar.record(name))


def _owned(info: os.stat_result) -> bool:
    """Whether we may read the file ``info`` describes with ``O_NOATIME`` (ours, or root)."""
    euid = os.geteuid()
    return euid == 0 or info.st_uid == euid


def _lstat(name: str, fd: int | None) -> os.stat_result | None:
    if fd is None:
        return None
    try:
        return os.lstat(name, dir_fd=fd)
    except OSError:
        return None


def _unlink(name: str, fd: int | None) -> None:
    """Remove ``name`` in a directory if it is there (never following a link)."""
    if fd is not None:
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass


class _Purge:
    """One purge: what is decided for each job, done by ``THREADS`` threads at once."""

    def __init__(self, dirs: _Dirs, older_than: float, status: str | None, dry_run: bool,
                 keep_for: set[str], outputs: set[str], inis: set[str]) -> None:
        self.dirs, self.older_than, self.status, self.dry_run = dirs, older_than, status, dry_run
        self.keep_for, self.outputs, self.inis = keep_for, outputs, inis
        self.now = time.time()

    def run(self, jobs: list[_Job]) -> tuple[list[str], list[tuple[str, str]]]:
        """``(purged, kept)``, each in the order of ``jobs``."""
        size = min(MAX_CHUNK, max(1, len(jobs) // (THREADS * 4)))
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        if len(chunks) <= 1 or THREADS <= 1:
            done = [self.chunk(c) for c in chunks]
        else:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(min(THREADS, len(chunks)))
            try:
                done = list(pool.map(self.chunk, chunks))
            finally:  # Ctrl-C: the chunks begun end, the others never start
                pool.shutdown(wait=True, cancel_futures=True)
        purged = [name for part in done for name, why in part if why is None]
        kept = [(name, why) for part in done for name, why in part if why is not None]
        return purged, kept

    def chunk(self, jobs: list[_Job]) -> list[tuple[str, str | None]]:
        """``(name, None)`` for each job purged, ``(name, why)`` for each kept; others: nothing."""
        done = []
        for job in jobs:
            try:
                verdict = self.consider(job)
            except OSError as exc:  # one bad entry never stops the purge
                verdict = f"cannot remove it: {exc.strerror or exc}"
            except Exception as exc:  # noqa: BLE001 - nor does one we did not foresee
                verdict = f"cannot remove it: {exc}"
            if verdict is not False:
                done.append((job.name, verdict))
        return done

    def consider(self, job: _Job) -> str | None | bool:
        """Purge one job if it is old and finished: ``None`` purged, ``why`` kept, False skipped."""
        fds = self.dirs.fd
        record_info = _lstat(f"{job.name}.yaml", fds["results"]) if job.recorded else None
        if record_info is not None:
            age = self.now - record_info.st_mtime
        else:  # no record: the job file's ctime (its move into completed/)
            job_info = _lstat(job.name, fds[job.state]) if job.state else None
            if job_info is None:
                return False
            age = self.now - job_info.st_ctime
        if age < self.older_than:
            return False
        recorded = None if record_info is None else \
            _status(self.dirs, job.name, _owned(record_info))
        if record_info is not None and recorded not in states.FINAL:
            return False  # retrying (back in the jar), or not a record of ours: not history
        if self.status is not None and recorded != self.status:
            return False
        if job.name in self.keep_for:
            return "a job in the jar depends on it"
        if job.state is None and self.reappeared(job.name):
            return False  # it moved into completed/ since the listing: the next purge's
        if self.dry_run:
            return None
        self.remove(job)
        return None

    def reappeared(self, name: str) -> bool:
        """Whether a job listed by its record alone has its file in ``completed/`` now."""
        return any(_lstat(name, self.dirs.fd[state]) is not None for state in states.LEFT)

    def remove(self, job: _Job) -> None:
        """Its file, then its output and INI copy (those listed), then its record."""
        fds, name = self.dirs.fd, job.name
        if job.state is not None:
            self.remove_job_file(job)
        for suffix in (".out", ".err"):
            if name + suffix in self.outputs:
                _unlink(name + suffix, fds["output"])
        if f"{name}.ini" in self.inis:  # an fjd job's INI copy lives as long as its file
            _unlink(f"{name}.ini", fds[INI_COPIES])
        _unlink(f"{name}.yaml", fds["results"])

    def remove_job_file(self, job: _Job) -> None:
        """Unlink ``completed/NAME`` (a directory set aside in ``rejected/``: its tree).

        A file gone since the listing raises: it may be back in the jar
        (``resubmit_job``), so its record and output stay.
        """
        fd = self.dirs.fd[job.state]
        if not job.is_dir:
            try:
                os.unlink(job.name, dir_fd=fd)
                return
            except (IsADirectoryError, PermissionError):  # EPERM: Linux's answer for a directory
                if not stat.S_ISDIR(os.lstat(job.name, dir_fd=fd).st_mode):
                    raise
        files.remove_tree(self.dirs.jar.state_dir(job.state) / job.name)


def _listed(dirs: _Dirs, busy: set[str]) -> tuple[list[_Job], set[str]]:
    """The finished jobs to consider (files in ``completed/``, ``rejected/``, then records alone).

    Also returns the names of every finished job listed, for the manifests.
    ``results/`` is listed after the job files: a job moves into
    ``completed/`` after its record is written, so a listed job file's
    record is listed too.
    """
    found: list[tuple[str, str, bool]] = []
    for state in states.LEFT:
        for entry in dirs.entries(state):
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            found.append((entry.name, state, is_dir))
    seen = {name for name, _, _ in found}
    recorded = {n[:-5] for n in dirs.names("results") if n.endswith(".yaml")}
    jobs = [_Job(name, state, is_dir, name in recorded) for name, state, is_dir in found
            if name not in busy]
    jobs += [_Job(name, None, False, True) for name in sorted(recorded - seen - busy)]
    return jobs, seen | recorded


def _manifests(dirs: _Dirs, older_than: float, now: float, left: set[str],
               dry_run: bool) -> list[str]:
    """Remove the old manifests of ``batches/`` that name no job ``left``; their ids.

    Only files named as batch ids are manifests; anything else there (a
    link, a directory, a hand-made file) is not ours and stays.  A manifest
    that cannot be read or removed stays for the next purge.
    """
    from .directives import DirectiveError, check_batch
    from .find import MAX_MANIFEST_BYTES

    fd = dirs.fd[BATCHES]
    removed = []
    for entry in sorted(dirs.entries(BATCHES), key=lambda e: e.name):
        try:
            check_batch(entry.name)
        except DirectiveError:
            continue
        info = _lstat(entry.name, fd)
        if info is None or not stat.S_ISREG(info.st_mode) or now - info.st_mtime < older_than:
            continue
        data = _read(fd, entry.name, MAX_MANIFEST_BYTES, _owned(info))
        if data is None:
            continue
        names = data.decode("utf-8", "surrogateescape").split("\n")
        if any(name in left for name in names if name):
            continue
        if not dry_run:
            try:
                os.unlink(entry.name, dir_fd=fd)
            except OSError:
                continue
        removed.append(entry.name)
    return removed


def purge_jobs(older_than: float, status: str | None = None, dry_run: bool = False,
               jar: Jar | None = None) -> dict:
    """Remove finished jobs older than ``older_than`` seconds (only ``status`` ones, if given).

    Returns ``{"purged": [names], "kept": [(name, why)], "batches": [ids]}``:
    ``kept`` names the old jobs left because a job in the jar depends on
    them or because they could not be removed; ``batches`` the batch
    manifests removed (older than ``older_than``, none of their jobs left).
    ``dry_run``: remove nothing, say the same.
    """
    from .history import check_status
    from .listing import check_jar

    check_status(status)
    if not isinstance(older_than, (int, float)) or not older_than >= 0:
        raise JobJarError(f"older_than must be a duration in seconds, not {older_than!r}")
    jar = jar or Jar.from_config()
    check_jar(jar)
    in_jar = _in_jar(jar)
    busy = {path.name for _c, path in in_jar}
    keep_for = needed(jar, in_jar)
    with _opened(jar) as dirs:
        jobs, listed = _listed(dirs, busy)
        # listed after completed/: a job's output is named before the job moves there
        outputs, inis = dirs.names("output"), dirs.names(INI_COPIES)
        work = _Purge(dirs, older_than, status, dry_run, keep_for, outputs, inis)
        purged, kept = work.run(jobs)
        left = busy | (listed - set(purged))
        batches = _manifests(dirs, older_than, work.now, left, dry_run)
    return {"purged": purged, "kept": kept, "batches": batches}
