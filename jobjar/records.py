"""Result records: one YAML file per job in ``results/``, written atomically.

Every line is ``key: value`` with the value in JSON notation, which is valid
YAML, so a record is both quick to write and readable by any YAML parser.
Records are replaced by writing a dot-file next to them and renaming it, so a
reader never sees half a record.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

#: Statuses of a job that has left the jar.
FINAL = ("succeeded", "failed", "cancelled", "timed-out", "dependency-failed", "poisoned",
         "rejected")
#: Status of a record whose job went back into the jar for another attempt.
PENDING = "retrying"


#: Every field of a record, in the order they are written.  Every record has
#: all of them, however its job ended, so readers need not care.
FIELDS = ("name", "category", "priority", "submitter", "node", "worker", "submitted",
          "claimed", "started", "finished", "duration", "exit_code", "signal", "status",
          "reason", "attempt", "retries", "recoveries", "stdout", "stderr", "attempts")


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
    """Write a record atomically: a dot-file first, then one rename."""
    # Short enough for a 250-byte job name; unique per node and process.
    tmp = f"{path.parent}/.{path.name[:40]}.{os.uname().nodename[:40]}.{os.getpid()}.tmp"
    # A hand-made name that is not UTF-8 becomes a JSON \udcXX escape, which reads back.
    data = dump(record).encode("utf-8", "backslashreplace")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:  # a jar whose results/ was never made (or was removed)
            os.makedirs(path.parent, exist_ok=True)
            fd = os.open(tmp, flags, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read(path: Path) -> dict | None:
    """Read a record, or ``None`` if there is none (or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as src:
            text = src.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        return None
    record = {}
    try:
        for line in text.splitlines():
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
    """The status field of a record, or ``None``."""
    record = read(path)
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


def carried_over(path: Path) -> dict:
    """The record a new attempt continues: only one still ``retrying``.

    A final record under the same name belongs to an earlier job that used
    the name; its history must not leak into the new one.
    """
    prior = read(path) or {}
    return prior if prior.get("status") == PENDING else {}


def file_facts(job: Path) -> tuple[float | None, str | None]:
    """Submission time (the file's mtime) and submitter (its owner) of a job file."""
    try:
        info = os.lstat(job)
    except OSError:
        return None, None
    return info.st_mtime, owner_name(info.st_uid)
