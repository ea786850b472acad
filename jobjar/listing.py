"""``list_jobs``: one row per job still in the jar, in the order the jar will take them.

It must stay fast with 100,000 queued jobs, so it lists each directory once
and never reads a record or a job file to make a row: the state and the
category are the directory, the priority is in the name
(``naming.priority_of``), the owner is the file's ``st_uid`` and the age
its modification time (the time of submission: a ``rename`` keeps it), from
the ``stat`` that ``os.scandir`` makes.  A running job's worker is its link
in ``claimed/`` and its running time that link's age.

The command of a job is the one thing a listing cannot get without opening
the job file, so a row reads it lazily (``Row.command``), only when a
column asks for it and only for the rows that are printed: ``list_jobs |
head`` reads ten files, ``list_jobs --format name,age`` none.

Order: running jobs first (longest running first), then the unclaimed ones
per category (uncategorized first) in claim order (``claim.QueueView``:
highest priority, then oldest, then name), then the waiting ones, oldest
first.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from . import states
from .errors import JobJarError
from .files import is_real_dir
from .layout import WORKER_JOB, Jar, held_category, subdirs
from .naming import check_category, priority_of, split_worker_name
from .records import owner_name

__all__ = ["list_jobs", "Row", "COLUMNS", "user_id"]

#: Every column a row has, in the order ``list_jobs`` prints them.
COLUMNS = ("state", "name", "category", "priority", "owner", "node", "worker", "age", "command",
           "batch")
#: What ``list_jobs`` prints without ``--format``.
DEFAULT_COLUMNS = ("state", "name", "category", "priority", "owner", "worker", "age", "command")
#: Columns read from the job file itself (lazily, per printed row).
FROM_FILE = ("command", "batch")

#: ``#JJ --batch ID`` (or ``--batch=ID``): the batch a job belongs to.
_BATCH = re.compile(rb"^#JJ[ \t]+--batch(?:[ \t]+|=)(\S+)[ \t]*$", re.MULTILINE)


class Row:
    """One job of the listing; ``command`` and ``batch`` are read from its file when asked."""

    __slots__ = ("state", "name", "category", "priority", "uid", "node", "worker", "age",
                 "directory", "mtime_ns", "_head")

    def __init__(self, state: str, directory: str, name: str, category: str | None,
                 uid: int | None, age: float | None, worker: str | None = None,
                 mtime_ns: int = 0, priority: int | None = None) -> None:
        # (a string, not a Path: at 100,000 rows, making Paths was a third of the time)
        self.state, self.directory, self.name, self.category = state, directory, name, category
        self.uid, self.mtime_ns = uid, mtime_ns  # mtime: the claim order's "oldest first"
        self.priority = priority_of(name) if priority is None else priority
        self.age = None if age is None else round(age, 1) if age > 0 else 0.0
        self.worker = worker
        self.node = split_worker_name(worker)[0] if worker else None
        self._head: bytes | None = None

    @property
    def path(self) -> Path:
        """Where the job file is."""
        return Path(self.directory, self.name)

    @property
    def owner(self) -> str | None:
        """The login of the job file's owner (``None``: it vanished before we looked)."""
        return None if self.uid is None else owner_name(self.uid)

    def head(self) -> bytes:
        """The first bytes of the job file (never through a link); empty if it is gone."""
        if self._head is None:
            from .depend import NotAJob, read_head

            try:
                self._head = read_head(self.path)
            except (OSError, NotAJob):
                self._head = b""
        return self._head

    @property
    def command(self) -> str | None:
        """The first line of its command (``records.command_line``), read now."""
        from .records import command_line

        return command_line(self.head())

    @property
    def batch(self) -> str | None:
        """The batch id of its ``#JJ --batch`` line, read now (``None``: not in a batch)."""
        found = _BATCH.search(self.head())
        return found.group(1).decode("utf-8", "backslashreplace") if found else None

    def as_dict(self, columns: Iterable[str] = COLUMNS) -> dict:
        """The chosen columns (reading the job file only if one of them needs it)."""
        return {column: getattr(self, column) for column in columns}


def user_id(user: str) -> int:
    """The uid of a login name (or of a number given as one); ``JobJarError`` if unknown."""
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        if user.isdigit():
            return int(user)
        raise JobJarError(f"no such user: {user!r}") from None


def selection(mine: bool, user: str | None, batch: str | None,
              jar: Jar | None) -> tuple[int | None, Jar]:
    """The owner a listing keeps (``None``: everyone's) and its jar, checked.

    Shared by ``list_jobs`` and ``job_history``: an unknown user, an
    unknown batch (as an unknown name is) and a missing jar are errors.
    """
    uid = os.getuid() if mine else user_id(user) if user is not None else None
    jar = jar or Jar.from_config()
    if batch is not None:
        from .find import batch_manifest

        batch_manifest(batch, jar)
    check_jar(jar)
    return uid, jar


def check_jar(jar: Jar) -> None:
    """A mistyped ``JJ_HOME`` must not look like an empty jar (as ``system_status`` says)."""
    if not jar.home.is_dir():
        raise JobJarError(f"no jar at {jar.home} (nothing was submitted or started there; "
                          "check JJ_HOME)")


def check_columns(text: str | Iterable[str] | None, allowed: tuple[str, ...],
                  default: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of a ``--format`` (``"name,age"``, or a list); an unknown one is refused."""
    if text is None:
        return default
    chosen = [c.strip() for c in (text.split(",") if isinstance(text, str) else text)]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise JobJarError(f"unknown column {unknown[0] if unknown else ''!r} "
                          f"(columns: {', '.join(allowed)})")
    return tuple(chosen)


def _queued(state: str, top: Path, now: float, only: str | None = None) -> list[Row]:
    """The jobs of ``STATE/`` and ``STATE/CATEGORY/``, in claim order per category.

    One listing per directory and the ``stat`` it brings; no file opened.
    Sorted as plain tuples (C compares them), and only then made ``Row``s.
    """
    found = []
    priorities: dict[str, int] = {}  # by extension: a few distinct ones among 100,000 names
    # ``only``: one category's directory ("": the top one), not the whole tree
    wanted = (None, *subdirs(top)) if only is None else (only or None,)
    if only and not is_real_dir(os.path.join(top, only)):  # never through a planted link
        wanted = ()
    for category in wanted:
        directory = os.path.join(top, category) if category else str(top)
        sort_category = category or ""
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    name = entry.name
                    if name[0] == ".":
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:  # taken while we looked
                        continue
                    if category is None and (info.st_mode & 0o170000) == 0o040000:
                        continue  # a category directory, listed on its own
                    dot = name.rfind(".")
                    extension = name[dot:] if dot > 0 else ""  # all priority_of looks at
                    priority = priorities.get(extension)
                    if priority is None:
                        priority = priorities[extension] = priority_of(name)
                    found.append((sort_category, -priority, info.st_mtime_ns, name,
                                  directory, category, info.st_uid, info.st_mtime))
        except OSError:  # gone, or a colleague's unreadable category: nothing to show
            continue
    if state != states.UNCLAIMED:  # waiting: oldest first, whatever the priority
        found.sort(key=lambda t: (t[2], t[3]))
    else:
        found.sort()
    return [Row(state, d, name, c, uid, now - mtime, None, mtime_ns, -negative)
            for _c, negative, mtime_ns, name, d, c, uid, mtime in found]


def _running(jar: Jar, now: float) -> list[Row]:
    """Jobs held by workers, from the links in ``claimed/`` (one listing)."""
    from .find import running_jobs

    rows = []
    for worker, path in running_jobs(jar).values():
        home = os.path.join(jar.worker_dir(worker), WORKER_JOB, "")
        if not str(path).startswith(home):  # a planted link: not a job of the jar
            continue
        try:
            uid = os.lstat(path).st_uid
            since = os.lstat(jar.claimed_link(worker)).st_mtime
        except OSError:  # finished while we looked
            continue
        try:
            rows.append(Row(states.RUNNING, str(path.parent), path.name,
                            held_category(jar.worker_dir(worker), path), uid, now - since,
                            worker))
        except ValueError:  # a link in claimed/ that is not named like a worker
            continue
    rows.sort(key=lambda r: (-(r.age or 0), r.name))
    return rows


def _now(jar: Jar) -> float:
    from .liveness import reading_now

    try:
        return reading_now(jar)
    except OSError:
        return time.time()


def list_jobs(mine: bool = False, user: str | None = None, category: str | None = None,
              state: str | None = None, batch: str | None = None,
              jar: Jar | None = None) -> list[Row]:
    """The jobs still in the jar (``states.IN_JAR``), as ``Row``s in the order shown above.

    ``mine``/``user``: only the jobs whose file that user owns; ``category``:
    only that category (``""``: uncategorized); ``state``: one of
    ``states.IN_JAR``; ``batch``: only the jobs whose ``#JJ --batch`` line
    names that id (this one filter reads every job file).
    """
    if state is not None and state not in states.IN_JAR:
        raise JobJarError(f"unknown state {state!r} (states of a job in the jar: "
                          f"{', '.join(states.IN_JAR)})")
    if category:
        check_category(category)
    uid, jar = selection(mine, user, batch, jar)
    now = _now(jar)
    rows: list[Row] = []
    for each in (states.RUNNING, states.UNCLAIMED, states.WAITING):
        if state is not None and each != state:
            continue
        if each == states.RUNNING:
            found = _running(jar, now)
        else:
            found = _queued(each, jar.state_dir(each), now, category)
        rows.extend(found)
    if uid is not None:
        rows = [r for r in rows if r.uid == uid]
    if category is not None:
        rows = [r for r in rows if (r.category or "") == category]
    if batch is not None:
        rows = [r for r in rows if r.batch == batch]
    return rows
