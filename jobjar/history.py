"""``job_history``: the jobs that left the jar, newest first, from their records.

Like ``sacct`` or GNU Parallel's ``--joblog``: one row per finished job (in
``completed/`` or ``rejected/``) with how it ended and what it used.  It
reads one record per job shown, so it costs in proportion to the history
kept (``purge_jobs`` keeps that bounded); ``--since`` looks at a record's
modification time (the time it was written, when the job finished) before
reading it, so a short window over a long history reads little.

A record is anybody's file: every value is shown only if it has the type
its field should have (``None`` otherwise), never trusted further.
"""

from __future__ import annotations

import os
import time

from . import records, states
from .errors import JobJarError
from .layout import Jar

__all__ = ["job_history"]

#: Every column of a history row, in the order ``--json`` and ``--csv`` give them.
COLUMNS = ("finished", "name", "status", "exit_code", "signal", "state", "category", "priority",
           "owner", "node", "worker", "submitted", "started", "duration", "attempt",
           "max_rss_kb", "cpu_user_s", "cpu_system_s", "batch", "command", "reason")
#: What ``job_history`` prints without ``--format``.
DEFAULT_COLUMNS = ("finished", "name", "status", "exit_code", "node", "duration", "max_rss_kb",
                   "cpu_user_s", "command")
_TEXT = ("finished", "status", "category", "node", "worker", "submitted", "started", "batch",
         "command", "reason")
_INTEGER = ("exit_code", "signal", "priority", "attempt", "max_rss_kb")
_NUMBER = ("duration", "cpu_user_s", "cpu_system_s")


def _typed(record: dict) -> dict:
    """The record's values of the history's columns, each of its field's type or ``None``."""
    row = {}
    for key in _TEXT:
        value = record.get(key)
        row[key] = value if isinstance(value, str) else None
    for key in _INTEGER:
        value = record.get(key)
        row[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
    for key in _NUMBER:
        value = record.get(key)
        row[key] = value if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and value == value else None
    return row


def check_status(status: str | None) -> str | None:
    """A ``--status`` filter: one of the final statuses (``states.FINAL``), or an error."""
    if status is not None and status not in states.FINAL:
        raise JobJarError(f"unknown status {status!r} (one of {', '.join(states.FINAL)})")
    return status


def finished_jobs(jar: Jar) -> list[tuple[str, os.DirEntry]]:
    """``(state, entry)`` of every file in ``completed/`` and ``rejected/`` (one listing each)."""
    found = []
    for state in states.LEFT:
        try:
            with os.scandir(jar.state_dir(state)) as entries:
                found.extend((state, e) for e in entries if not e.name.startswith("."))
        except OSError:
            continue
    return found


def job_history(since: float | None = None, mine: bool = False, user: str | None = None,
                status: str | None = None, batch: str | None = None,
                jar: Jar | None = None) -> list[dict]:
    """Finished jobs, newest first: a dict per job with every column of ``COLUMNS``.

    ``since``: only those whose record was written at most that many seconds
    ago; ``mine``/``user``: only those whose job file that user owns;
    ``status``: only those that ended so; ``batch``: only that batch's.
    A job whose record is missing is listed with ``status`` ``None``.
    """
    from .listing import selection

    check_status(status)
    uid, jar = selection(mine, user, batch, jar)
    cutoff = None if since is None else time.time() - since
    rows = []
    for state, entry in finished_jobs(jar):
        try:  # the owner of the job file: the submitter, as the file system says
            owner = entry.stat(follow_symlinks=False).st_uid
        except OSError:  # purged or resubmitted while we looked
            continue
        if uid is not None and owner != uid:
            continue
        path = jar.record(entry.name)
        if cutoff is not None:
            try:
                if os.lstat(path).st_mtime < cutoff:
                    continue
            except OSError:
                continue
        row = _typed(records.read(path) or {})
        if status is not None and row["status"] != status:
            continue
        if batch is not None and row["batch"] != batch:
            continue
        row.update(name=entry.name, state=state, owner=records.owner_name(owner))
        rows.append(row)
    rows.sort(key=lambda r: (r["finished"] or "", r["name"]), reverse=True)
    return [{c: row.get(c) for c in COLUMNS} for row in rows]
