"""``purge_jobs``: remove finished jobs older than a duration, so that history stays bounded.

A finished job is three things: its file in ``completed/`` (or ``rejected/``),
its record ``results/NAME.yaml`` and its default output ``output/NAME.out``
and ``NAME.err`` (and the INI copy ``ini/NAME.ini`` of a ``--ini`` job).
Output a job sent elsewhere (``--output FILE``) is the user's and stays.
A job's age is that of its record (written once, when it finished; a
``rename`` into ``completed/`` keeps the file's own time, so the file's
``ctime`` stands in where the record is missing).

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
"""

from __future__ import annotations

import os
import stat
import time

from . import files, records, states
from .errors import JobJarError
from .layout import WORKER_JOB, Jar, jobs_in

__all__ = ["purge_jobs"]


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


def _age(now: float, record: os.stat_result | None, job: os.stat_result | None) -> float | None:
    if record is not None:
        return now - record.st_mtime
    if job is not None:
        return now - job.st_ctime
    return None


def _lstat(path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def purge_jobs(older_than: float, status: str | None = None, dry_run: bool = False,
               jar: Jar | None = None) -> dict:
    """Remove finished jobs older than ``older_than`` seconds (only ``status`` ones, if given).

    Returns ``{"purged": [names], "kept": [(name, why)]}``: ``kept`` names
    the old jobs left because a job in the jar depends on them or because
    they could not be removed.  ``dry_run``: remove nothing, say the same.
    """
    from .history import check_status
    from .listing import check_jar

    check_status(status)
    if not isinstance(older_than, (int, float)) or not older_than >= 0:
        raise JobJarError(f"older_than must be a duration in seconds, not {older_than!r}")
    jar = jar or Jar.from_config()
    check_jar(jar)
    now = time.time()
    in_jar = _in_jar(jar)
    busy = {path.name for _c, path in in_jar}
    keep_for = needed(jar, in_jar)
    purged: list[str] = []
    kept: list[tuple[str, str]] = []
    seen: set[str] = set()

    def consider(name: str, job_path) -> None:
        seen.add(name)
        if name in busy:
            return
        record_path = jar.record(name)
        record_info = _lstat(record_path)
        # the job file's own stat only when needed: no record, or to tell a directory
        job_info = _lstat(job_path) if job_path is not None and record_info is None else None
        age = _age(now, record_info, job_info)
        if age is None or age < older_than:
            return
        recorded = records.status_of(record_path) if record_info is not None else None
        if record_info is not None and recorded not in states.FINAL:
            return  # retrying (back in the jar), or not a record of ours: not history to purge
        if status is not None and recorded != status:
            return
        if name in keep_for:
            kept.append((name, "a job in the jar depends on it"))
            return
        if dry_run:
            purged.append(name)
            return
        try:
            if job_path is not None:
                try:
                    os.unlink(job_path)
                except IsADirectoryError:  # a directory set aside in rejected/
                    files.remove_tree(job_path)
                except PermissionError:  # EPERM: Linux's answer for a directory, too
                    if not stat.S_ISDIR(os.lstat(job_path).st_mode):
                        raise
                    files.remove_tree(job_path)
            for output in jar.default_output(name):
                files.unlink(output)
            files.unlink(jar.ini_copy(name))  # an fjd job's INI copy lives as long as its file
            files.unlink(record_path)
        except OSError as exc:
            kept.append((name, f"cannot remove it: {exc.strerror or exc}"))
            return
        purged.append(name)

    for state in states.LEFT:
        try:
            with os.scandir(jar.state_dir(state)) as entries:
                names = [e.name for e in entries if not e.name.startswith(".")]
        except OSError:
            continue
        for name in names:
            consider(name, jar.state_dir(state) / name)
    try:  # records whose job file is gone (an interrupted purge, a file removed by hand)
        with os.scandir(jar.results) as entries:
            orphans = [e.name[:-5] for e in entries
                       if e.name.endswith(".yaml") and not e.name.startswith(".")]
    except OSError:
        orphans = []
    for name in orphans:
        if name not in seen:
            consider(name, None)
    return {"purged": purged, "kept": kept}
