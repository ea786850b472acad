"""Result records: one YAML file per job in ``results/``, written atomically.

Every line is ``key: value`` with the value in JSON notation, which is valid
YAML, so a record is both quick to write and readable by any YAML parser.
Records are replaced by writing a dot-file next to them and renaming it, so a
reader never sees half a record.

This module is the one place where records are built: ``attempt`` (a worker
runs the job), ``lost`` (its worker died running it) and ``never_ran`` (it
leaves the jar without running: cancelled, dependency failed, bad
directive, abandoned).  Each starts from ``blank``, so every record has every
field of ``FIELDS``.  A record read back is somebody's file: ``carried_over``
keeps only well-typed values of an earlier attempt.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

from . import files
from .direct import as_typed
from .states import FINAL, PENDING  # noqa: F401 - re-exported: records.FINAL, records.PENDING

#: Every field of a record, in the order they are written.  Every record has
#: all of them, however its job ended, so readers need not care.
FIELDS = ("name", "category", "priority", "submitter", "node", "worker", "submitted",
          "claimed", "started", "finished", "duration", "exit_code", "signal", "status",
          "reason", "attempt", "retries", "recoveries", "stdout", "stderr", "batch", "attempts",
          # accounting (issue 15): the kernel's figures at reaping, and what was run
          "max_rss_kb", "cpu_user_s", "cpu_system_s", "command")
#: Fields of a record that the kernel gives when a job's process is reaped (``None``: never ran).
USAGE_FIELDS = ("max_rss_kb", "cpu_user_s", "cpu_system_s")
#: Longest ``command`` kept in a record (the first line of a job; the file has the rest).
COMMAND_CHARS = 200


def blank(name: str, category: str | None, priority: int) -> dict:
    """A record with every field, of a job that has not run yet."""
    record = dict.fromkeys(FIELDS)
    record.update(name=name, category=category, priority=priority, attempt=0, retries=0,
                  recoveries=0, attempts=[])
    return record


def utc_iso(timestamp: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (``None`` stays ``None``)."""
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


#: Strings JSON writes as they are, between quotes (most values of a record).
_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\U0010ffff]*')


def _json(value: object) -> str:
    """``json.dumps(value, ensure_ascii=False)``, with a fast path for the common values.

    A worker writes a record for every job; the general encoder, called once
    per field, was a tenth of a worker's own time per job.
    """
    if value is None:
        return "null"
    kind = type(value)
    if kind is str and _PLAIN.fullmatch(value):
        return f'"{value}"'
    if kind is int:
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def dump(record: dict) -> str:
    """Render a record as YAML text (one ``key: json`` line per field)."""
    return "".join([f"{key}: {_json(value)}\n" for key, value in record.items()])


def write(path: Path, record: dict) -> None:
    """Write a record atomically, never through a name someone planted.

    A dot-file with a random name, created with ``O_EXCL``, then one rename
    (``files.write_new``): a link left at a predictable temporary name
    cannot make a worker truncate someone's file.
    """
    # A hand-made name that is not UTF-8 becomes a JSON \udcXX escape, which reads back.
    data = dump(record).encode("utf-8", "backslashreplace")
    try:
        files.write_new(path, data)
    except FileNotFoundError:  # a jar whose results/ was never made (or was removed)
        files.make_dir(path.parent)
        files.write_new(path, data)


#: A record is small; anything bigger is not one of ours (and is not read whole).
MAX_BYTES = 1 << 20


def _read_text(path: Path) -> str | None:
    """The text of a regular file at ``path`` (``files.read_regular``), or ``None``."""
    data = files.read_regular(path, MAX_BYTES)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read(path: Path) -> dict | None:
    """Read a record, or ``None`` if there is none (or it is unreadable)."""
    text = _read_text(path)
    return None if text is None else _parse(text)


def _parse(text: str) -> dict | None:
    """A record's text as a dict (``None``: not a record)."""
    record = {}
    try:
        for line in text.split("\n"):  # not splitlines(): U+2028 may sit in a value
            if not line:
                continue
            key, _, value = line.partition(": ")
            record[key] = json.loads(value)
        return record
    except ValueError:  # edited by hand: fall back to a real YAML parser
        import yaml

        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
        return loaded if isinstance(loaded, dict) else None


def status_of(path: Path) -> str | None:
    """The status field of a record, or ``None``.

    Only the ``status:`` line is decoded (the last one, as ``read`` would
    keep): ``purge_jobs`` asks this of every finished job, and decoding all
    of a record's fields was most of its time.  A record that is not one
    ``key: json`` line per field is read whole (``read``).
    """
    text = _read_text(path)
    if text is None:
        return None
    found = None
    for line in text.split("\n"):
        if line.startswith("status: "):
            found = line[8:]
    if found is not None:
        try:
            value = json.loads(found)
            return value if isinstance(value, str) or value is None else _status_of_whole(text)
        except ValueError:
            pass
    return _status_of_whole(text)


def _status_of_whole(text: str) -> str | None:
    record = _parse(text)
    return record.get("status") if record else None


_owners: dict[int, str] = {}


def owner_name(uid: int) -> str:
    """Login of a file's owner, for a record's ``submitter`` field.

    Cached: a worker asks for every job, and a password-database lookup
    (a file read, or a network call with LDAP) costs more than the rest of
    the record.
    """
    name = _owners.get(uid)
    if name is None:
        import pwd

        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        _owners[uid] = name
    return name


def count(value: object) -> int:
    """A non-negative count read from a file: anything else (``"x"``, ``-5``, 1e300) is 0.

    Records and worker files can be edited by hand or forged; a bad number
    in one must not stop a worker or ``recover_jobs``.
    """
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if 0 <= value < 10**9 else 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def carried_over(path: Path) -> dict:
    """What a new attempt keeps of the record at ``path``: only a ``retrying`` one.

    A final record under the same name belongs to an earlier job that used
    the name; its history must not leak into the new one.  Only the fields
    that carry over are kept, each checked for its type.
    """
    return continued(read(path) or {})


def continued(prior: dict) -> dict:
    """``carried_over`` of a record already read (a worker reads it once per job)."""
    if prior.get("status") != PENDING:
        return {}
    attempts = prior.get("attempts")
    return {"submitted": _text(prior.get("submitted")), "submitter": _text(prior.get("submitter")),
            "attempt": count(prior.get("attempt")), "recoveries": count(prior.get("recoveries")),
            "attempts": [a for a in attempts if isinstance(a, dict)]
            if isinstance(attempts, list) else [],
            "worker": _text(prior.get("worker")), "node": _text(prior.get("node")),
            "batch": _text(prior.get("batch"))}


def attempt(name: str, category: str | None, priority: int, path: Path, worker: str,
            node: str, claimed_at: float, prior: dict, stdout: str, stderr: str) -> dict:
    """The record of a new attempt by ``worker`` (``prior``: from ``carried_over``)."""
    record = blank(name, category, priority)
    submitted, owner = file_facts(path)
    record.update(submitter=owner, node=node, worker=worker,
                  submitted=prior.get("submitted") or utc_iso(submitted),
                  claimed=utc_iso(claimed_at), attempt=prior.get("attempt", 0) + 1,
                  recoveries=prior.get("recoveries", 0), stdout=stdout, stderr=stderr,
                  batch=prior.get("batch"), attempts=list(prior.get("attempts", [])))
    return record


def finish_attempt(record: dict, status: str, reason: str | None, started: float | None,
                   finished: float, exit_code: int | None, signal: int | None,
                   retry: bool, usage: tuple | None = None) -> dict:
    """Fill in how an attempt ended, and add it to the record's history.

    ``usage``: ``(max_rss_kb, cpu_user_s, cpu_system_s)`` as the kernel gave
    them at reaping (``execute.Usage``); what they include is described there.
    """
    if started is not None:
        record.update(started=utc_iso(started), finished=utc_iso(finished),
                      duration=round(finished - started, 6), exit_code=exit_code, signal=signal)
        if usage is not None:
            record.update(zip(USAGE_FIELDS, usage))
        record["attempts"].append({k: record[k] for k in (
            "attempt", "worker", "node", "started", "finished", "exit_code", "signal")}
            | {"status": status})
    else:
        record["finished"] = utc_iso(finished)
    record.update(status=PENDING if retry else status, reason=reason)
    return record


def interrupted(record: dict) -> dict:
    """Mark the attempt just finished as cut short by its worker's stop (then requeued).

    Counted as a recovery, like a lost attempt (``lost``): the history says
    ``interrupted`` rather than ``failed``, and the job runs again.
    """
    if record["attempts"]:
        record["attempts"][-1]["status"] = "interrupted"
    record["recoveries"] = count(record.get("recoveries")) + 1
    return record


def lost(path: Path, category: str | None, priority: int, worker: str, why: str,
         prior: dict | None, now: float) -> dict:
    """The record of a job whose worker died running it (``prior``: its record on disk).

    Naming the dead worker makes a second recovery of the same crash (after
    this one was itself interrupted) a plain move, not another count.
    """
    prior = prior or {}
    record = blank(path.name, category, priority)
    for key in ("submitted", "submitter", "node", "claimed", "started", "stdout", "stderr",
                "batch"):
        record[key] = _text(prior.get(key))
    record["attempt"] = count(prior.get("attempt"))
    record["retries"] = count(prior.get("retries"))
    history = prior.get("attempts")
    record["attempts"] = [a for a in history if isinstance(a, dict)] \
        if isinstance(history, list) else []
    if not record["submitted"]:  # it died before writing any record: the file tells
        submitted, owner = file_facts(path)
        record.update(submitted=utc_iso(submitted), submitter=owner)
    if not record["node"]:
        record["node"] = worker.rsplit(".", 1)[0]
    record["command"] = _text(prior.get("command")) or command_of(path)
    record["attempts"].append({"worker": worker, "status": "lost", "reason": why,
                               "recovered": utc_iso(now)})
    record.update(recoveries=count(prior.get("recoveries")) + 1, status=PENDING,
                  reason=f"recovered: {why}", worker=worker)
    return record


def never_ran(path: Path, category: str | None, priority: int, status: str, reason: str,
              now: float, prior: dict | None = None) -> dict:
    """The record of a job that leaves the jar without running (this time).

    ``prior`` is what ``carried_over`` kept of an earlier attempt (a job
    cancelled while it waited for a retry keeps its history).
    """
    prior = prior or {}
    submitted, owner = file_facts(path)
    record = blank(path.name, category, priority)
    record.update(submitter=prior.get("submitter") or owner,
                  submitted=prior.get("submitted") or utc_iso(submitted),
                  node=prior.get("node"), attempt=prior.get("attempt", 0),
                  recoveries=prior.get("recoveries", 0),
                  attempts=list(prior.get("attempts", [])),
                  status=status, reason=reason, finished=utc_iso(now),
                  batch=prior.get("batch") or batch_of(path), command=command_of(path))
    return record


def command_of(job: Path) -> str | None:
    """``command_line`` of a job file, read as a worker reads it; ``None`` if it cannot be.

    For the records of jobs no worker ran to the end (``lost``,
    ``never_ran``): their history names what was run, as a worker's does.
    """
    from .depend import NotAJob, read_head

    try:
        return command_line(read_head(job))
    except (OSError, NotAJob):
        return None


def batch_of(job: Path) -> str | None:
    """The batch a job file carries (its ``#JJ --batch`` line), or ``None``.

    Read like a worker reads a job (never through a link, never blocking on
    a fifo); a file that cannot be read or parsed has no batch.
    """
    from . import directives

    try:
        fd = os.open(job, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return directives.parse(os.read(fd, directives.HEAD_BYTES)).batch
    except Exception:  # someone's file: a bad directive means no batch, never an error
        return None
    finally:
        os.close(fd)


def command_line(head: bytes) -> str | None:
    """A job's command for its record and listings: its first line that is not a comment.

    For a job ``submit_job`` wrote, that is the user's command (its first
    line, after ``#!/bin/sh`` and the ``#JJ`` lines); for a submitted
    script, the first line of its body.  A binary (``submit_job -f`` of a
    program: no ``#!`` line, or the small script that wraps it) is
    ``(binary)``; a file with no such line is ``None``.  The ``exec`` that
    ``submit_job`` puts before a simple command is not shown.  At most
    ``COMMAND_CHARS`` characters; not UTF-8 becomes ``\\xNN``.
    """
    if not head.startswith(b"#!") and b"\x00" in head[:512]:
        return "(binary)"
    for line in head.split(b"\n"):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b'prog="$JJ_SCRATCH_DIR/.jj-binary"'):  # submit._wrap's binary
            return "(binary)"
        text = as_typed(line).decode("utf-8", "backslashreplace")  # without a simple one's exec
        return text if len(text) <= COMMAND_CHARS else text[:COMMAND_CHARS - 3] + "..."
    return None


def file_facts(job: Path) -> tuple[float | None, str | None]:
    """Submission time (the file's mtime) and submitter (its owner) of a job file."""
    try:
        info = os.lstat(job)
    except OSError:
        return None, None
    return info.st_mtime, owner_name(info.st_uid)
