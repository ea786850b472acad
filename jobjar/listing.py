"""``list_jobs``: one row per job still in the jar, in the order the jar will take them.

It must stay fast with 100,000 queued jobs (the target: under a second,
``docs/performance.md``), so it lists each directory once and reads no record: the
state and the category are the directory, the priority is in the name
(``naming.priority_of``), the owner is the file's ``st_uid`` and the age
its modification time (the time of submission: a ``rename`` keeps it).

The command column is the one thing a listing cannot get without the job
file itself.  When it (or ``batch``) is wanted, each job file the listing
names as a regular file is read in the listing's own pass (``_read_jobs``):
per job one ``open`` relative to its directory's descriptor
(``O_NOFOLLOW | O_NONBLOCK``: never through a link, never blocking on a
fifo; ``O_NOATIME`` where allowed: a listing is no access), an ``fstat``
(owner and times for the claim order, and the check that it is still a
regular file), one small ``read``, a ``close``, and the first command line
found by one regular expression.  That is one system call fewer than an
``lstat`` pass then a reading pass, and over NFS the open brings the
attributes, so the separate GETATTR goes too.  From ``FORK_AT`` files in
one directory (and more than one CPU) a forked child reads half of them
(``_shared_read``; threads cannot help: the GIL changes hands at every
system call).  A file that cannot be read is a row whose command is
``None``, never an error.  The price: ``list_jobs | head`` with the
default columns reads every job file, not the first few thousand, because
a whole listing read this way costs less than the lazy one did.
``--format`` without ``command`` and ``batch`` opens no file (the
``lstat`` pass only); the API's rows read their command when asked unless
``commands=True`` (``read_commands``).

Running jobs are found where they are, in each worker's ``job/`` directory
(one listing per worker), not from the links in ``claimed/``: a worker
renames a job into its ``job/`` before it makes its link, and the job is
running from that rename on.  Its running time is the age of the worker's
link in ``claimed/`` (made as it starts the job), or, before the link is
there, of the job file's last status change (the claim's ``rename``).  A
``job/`` the reader may not list is seen through the worker's link.

Order: running jobs first (longest running first), then the unclaimed ones
per category (uncategorized first) in claim order (``claim.QueueView``:
highest priority, then oldest, then name), then the waiting ones, oldest
first.
"""

from __future__ import annotations

import errno
import gc
import marshal
import os
import re
import sys
import time
from collections.abc import Iterable
from operator import attrgetter
from pathlib import Path

from . import states
from .direct import as_typed
from .errors import JobJarError
from .layout import WORKER_JOB, Jar
from .naming import check_category, priority_of, split_worker_name
from .records import COMMAND_CHARS, command_line, owner_name

__all__ = ["list_jobs", "Row", "COLUMNS", "user_id"]

#: Every column a row has, in the order ``list_jobs`` prints them.
COLUMNS = ("state", "name", "category", "priority", "owner", "node", "worker", "age", "command",
           "batch")
#: What ``list_jobs`` prints without ``--format``.
DEFAULT_COLUMNS = ("state", "name", "category", "priority", "owner", "worker", "age", "command")
#: Columns read from the job file itself.
FROM_FILE = ("command", "batch")

#: ``#JJ --batch ID`` (or ``--batch=ID``): the batch a job belongs to.
_BATCH = re.compile(rb"^#JJ[ \t]+--batch(?:[ \t]+|=)(\S+)[ \t]*$", re.MULTILINE)

#: How a job file is opened to read its head: never through a link, never blocking.
_OPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
#: ... and, where the kernel lets us (our own files, or as root), without marking it read:
#: the first read of a freshly written file would otherwise write its inode back (atime).
_NOATIME = getattr(os, "O_NOATIME", 0)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: The first read of a head: a job's command is almost always in its first lines.
_FIRST_READ = 2048
_NOT_READ = object()  # a row's command before anyone asked for it
_REGULAR, _TYPE = 0o100000, 0o170000


#: The first line whose first character that is not blank is not ``#``.
_COMMAND = re.compile(rb"^[ \t\r\x0b\x0c]*[^#\s][^\n]*", re.MULTILINE)


def _command(fd: int, head: bytes, search=_COMMAND.search) -> str | None:
    """``records.command_line`` of the job open at ``fd``, whose first read gave ``head``.

    The same answer for much less work: the first line that is neither
    blank nor a comment is found by one regular expression (C).  Only when
    that read filled up before the line ended is the rest of what a worker
    reads (``directives.HEAD_BYTES``) read too; only a head with something
    unusual in it (a NUL byte, the wrapper of a binary, a line too long)
    goes through ``records.command_line`` itself.  ``OSError`` if the
    further read fails.
    """
    found = search(head)
    if len(head) == _FIRST_READ and (found is None or found.end() == len(head)):
        from .directives import HEAD_BYTES

        head += os.read(fd, HEAD_BYTES - _FIRST_READ)
        found = search(head)
    if found is None or b"\x00" in head:
        return command_line(head)
    line = found.group().strip()
    if len(line) >= COMMAND_CHARS or not line.isascii() or line.startswith(b"prog="):
        return command_line(head)
    return as_typed(line).decode()


class Row:
    """One job of the listing; ``command`` and ``batch`` come from its file.

    Made by the hundred thousand, so it is built by plain assignment and
    whatever is derived (``node``, ``age``, ``owner``) is computed when asked.
    """

    __slots__ = ("state", "name", "category", "priority", "uid", "worker", "directory",
                 "mtime_ns", "since", "now", "_command", "_head")

    def __init__(self, state: str, directory: str, name: str, category: str | None,
                 uid: int | None, since: float | None, now: float, worker: str | None = None,
                 mtime_ns: int = 0, priority: int | None = None,
                 command: object = _NOT_READ, head: bytes | None = None) -> None:
        # (a string, not a Path: at 100,000 rows, making Paths was a third of the time)
        self.state, self.directory, self.name, self.category = state, directory, name, category
        self.uid, self.mtime_ns = uid, mtime_ns  # mtime: the claim order's "oldest first"
        self.priority = priority_of(name) if priority is None else priority
        self.since, self.now, self.worker = since, now, worker
        self._command, self._head = command, head

    @property
    def age(self) -> float | None:
        """Seconds since it was submitted (running: since it started), to a tenth."""
        if self.since is None:
            return None
        age = self.now - self.since
        return round(age, 1) if age > 0 else 0.0

    @property
    def node(self) -> str | None:
        """The node of its worker (``None``: not running)."""
        return split_worker_name(self.worker)[0] if self.worker else None

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
        """The first line of its command (``records.command_line``), read if not yet read."""
        if self._command is _NOT_READ:
            read_commands([self])
        return self._command  # type: ignore[return-value]

    @property
    def batch(self) -> str | None:
        """The batch id of its ``#JJ --batch`` line, read now (``None``: not in a batch)."""
        found = _BATCH.search(self.head())
        return found.group(1).decode("utf-8", "backslashreplace") if found else None

    def as_dict(self, columns: Iterable[str] = COLUMNS) -> dict:
        """The chosen columns (reading the job file only if one of them needs it)."""
        return {column: getattr(self, column) for column in columns}


def column_values(rows: list[Row], column: str) -> list:
    """One column of many rows, as ``getattr`` would give it (``age`` not rounded), in bulk.

    The derived columns (``owner``, ``node``, ``age``) are computed once per
    distinct input, not through a property call per row.
    """
    if column == "command":
        read_commands(rows)
        return list(map(attrgetter("_command"), rows))  # (all read: no property call per row)
    if column == "owner":
        uids = list(map(attrgetter("uid"), rows))
        owners = {uid: None if uid is None else owner_name(uid) for uid in set(uids)}
        return list(map(owners.__getitem__, uids))
    if column == "age":  # (not rounded: a table shows whole seconds)
        return [None if r.since is None else age if (age := r.now - r.since) > 0 else 0.0
                for r in rows]
    if column == "node":
        nodes: dict = {None: None}
        return [nodes.get(r.worker) or nodes.setdefault(r.worker, r.node) for r in rows]
    return list(map(attrgetter(column), rows))


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


def _open_dir(path: str, dir_fd: int | None = None) -> int | None:
    """A descriptor of a real directory (never a link to one), or ``None``."""
    try:
        return os.open(path, _DIRECTORY, dir_fd=dir_fd)
    except OSError:  # gone, a planted link, or a colleague's unreadable category
        return None


def _scan(fd: int, top: bool, priorities: dict[str, int],
          read: bool = False) -> tuple[list[tuple], list[str]]:
    """The jobs of one open directory, and (``top``) its real subdirectories, the categories.

    A job is ``(-priority, mtime_ns, name, uid, mtime, ctime, command, head)``:
    its claim-order key first, so that the list sorts as it is.  Without
    ``read``, each job costs the ``lstat`` the listing brings, and
    ``command`` is ``_NOT_READ`` for a regular file (``read_commands``
    reads it when asked), ``None`` for anything else.  With ``read``, each
    job the listing says is a regular file is opened and read instead
    (``_read_jobs``: the open brings what the ``lstat`` would), so that
    ``command`` is read and ``head`` kept.  ``priorities`` keeps
    ``-priority_of`` per extension (a few among 100,000 names).  Entries
    that vanish while we look are left out; dot-names are never jobs.
    """
    found: list[tuple] = []
    categories: list[str] = []
    regular: list[str] = []
    append = found.append
    with os.scandir(fd) as entries:
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            try:
                if entry.is_dir(follow_symlinks=False):  # (the listing's d_type: no call)
                    if top:
                        categories.append(name)
                    continue
                if read and entry.is_file(follow_symlinks=False):
                    regular.append(name)  # (read, and its status taken, by _read_jobs)
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:  # taken while we looked
                continue
            append((_negative(name, priorities), info.st_mtime_ns, name, info.st_uid,
                    info.st_mtime, info.st_ctime,
                    _NOT_READ if not read and info.st_mode & _TYPE == _REGULAR else None, None))
    if regular:
        found += _shared_read(fd, regular, priorities)
    categories.sort()
    return found, categories


def _negative(name: str, priorities: dict[str, int]) -> int:
    """``-priority_of(name)``, computed once per extension (all ``priority_of`` looks at)."""
    dot = name.rfind(".")
    extension = name[dot:] if dot > 0 else ""
    negative = priorities.get(extension)
    if negative is None:
        negative = priorities[extension] = -priority_of(name)
    return negative


def _read_jobs(fd: int, names: list[str], priorities: dict[str, int]) -> list[tuple]:
    """``_scan``'s tuples of these job files of the directory open at ``fd``, read, sorted.

    Per job: ``open`` (``O_NOFOLLOW | O_NONBLOCK``, and ``O_NOATIME`` while
    the kernel allows it), ``fstat`` (the owner and times the claim order
    needs, and that it is still a regular file), one small ``read``,
    ``close``: one system call more than the ``lstat`` alone, one fewer
    than ``lstat`` then ``read_commands``, and over NFS the open brings the
    attributes, so the separate GETATTR goes too.  What cannot be opened
    (a link put there since the listing, a colleague's file we may not
    read) is taken with ``lstat`` and has no command; what is no longer a
    regular file is closed unread; what vanished is left out.
    """
    found: list[tuple] = []
    append, get = found.append, priorities.get
    open_, fstat, read, close, lstat = os.open, os.fstat, os.read, os.close, os.lstat
    kind, regular, first, command_of = _TYPE, _REGULAR, _FIRST_READ, _command  # (locals: faster)
    flags = _OPEN | _NOATIME
    for name in names:
        try:
            job = open_(name, flags, dir_fd=fd)
        except OSError as exc:
            job = None
            if exc.errno == errno.EPERM and flags != _OPEN:  # O_NOATIME: not our file
                flags = _OPEN  # (the rest without it: one refusal at most)
                try:
                    job = open_(name, flags, dir_fd=fd)
                except OSError:
                    pass
        info = command = head = None
        if job is not None:
            try:
                info = fstat(job)
                if info.st_mode & kind == regular:
                    head = read(job, first)
                    command = command_of(job, head)
                    if len(head) == first:
                        head = None  # (not the whole file: ``batch`` reads its own)
            except OSError:  # an I/O error: no command
                command = head = None
            finally:
                close(job)
        if info is None:
            try:
                info = lstat(name, dir_fd=fd)
            except OSError:  # gone
                continue
        dot = name.rfind(".")
        negative = get(name[dot:] if dot > 0 else "")
        if negative is None:
            negative = _negative(name, priorities)
        append((negative, info.st_mtime_ns, name, info.st_uid, info.st_mtime, info.st_ctime,
                command, head))
    found.sort()  # (by each reader: the caller's sort of the halves put together is a merge)
    return found


#: From this many job files to read in one directory, a forked child reads half of them
#: (if there is more than one CPU): the reading is system calls, the two halves run at
#: once.  (Threads do not help: the GIL changes hands at every system call of a few µs.)
FORK_AT = 20_000
#: The parent's share of them, in percent: a little more than half, since the child
#: starts later (the fork) and ends later (writing its rows for the parent to read).
SHARE = 52


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _may_fork() -> bool:
    """A child is worth it and safe: several CPUs, a memfd, and no other thread.

    (A thread of a program using the API may hold a lock the child would
    then wait on forever; such a program reads serially.)
    """
    threading = sys.modules.get("threading")
    return hasattr(os, "memfd_create") and _cpus() > 1 \
        and (threading is None or threading.active_count() == 1)


def _shared_read(fd: int, names: list[str], priorities: dict[str, int]) -> list[tuple]:
    """``_read_jobs`` of all the names, half of them by a forked child when there are many.

    The child writes its tuples (``marshal``) into an anonymous file (not a
    pipe: a pipe fills at 64 KiB and the child would wait for a parent busy
    with its own half) and exits; the parent reads its half, waits for the
    child, then reads the file.  A child that failed in any way (fork
    refused, an exception, killed, short or garbled output) costs time
    only: the parent reads the child's half itself.  The child is always
    waited for; on an exception in the parent it is killed first.
    """
    if len(names) < FORK_AT or not _may_fork():
        return _read_jobs(fd, names, priorities)
    half = len(names) * SHARE // 100
    mine, theirs = names[:half], names[half:]
    try:
        out = os.memfd_create("jobjar-list_jobs", os.MFD_CLOEXEC)
    except OSError:
        return _read_jobs(fd, names, priorities)
    try:
        try:
            pid = os.fork()
        except OSError:
            return _read_jobs(fd, names, priorities)
        if pid == 0:
            _child(fd, theirs, priorities, out)  # (never returns)
        try:
            found = _read_jobs(fd, mine, priorities)
        except BaseException:
            import signal

            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # (already ended and reaped: SIGCHLD ignored)
                pass
            raise
        finally:
            status = _wait(pid)
        return found + (_child_rows(out, status, len(theirs))
                        or _read_jobs(fd, theirs, priorities))
    finally:
        os.close(out)


def _child(fd: int, names: list[str], priorities: dict[str, int], out: int) -> None:
    """The forked child's work: its half read, written to ``out``; it exits, never returns.

    ``os._exit``: nothing of the parent's (buffered output, ``atexit``) runs twice.
    """
    status = 1
    try:
        data = memoryview(marshal.dumps((len(names), _read_jobs(fd, names, priorities))))
        while data:
            data = data[os.write(out, data):]
        status = 0
    finally:
        os._exit(status)


def _wait(pid: int) -> int | None:
    """The child's wait status, once it has ended; ``None`` if the system reaped it for us
    (a program that ignores ``SIGCHLD``): how it ended is then unknown."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _child_rows(out: int, status: int | None, expected: int) -> list[tuple] | None:
    """What a child that exited with 0 wrote for its ``expected`` names; ``None``: read again."""
    if status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    try:
        data = os.pread(out, os.fstat(out).st_size, 0)
        count, found = marshal.loads(data)
    except (OSError, EOFError, ValueError, TypeError):  # short or garbled
        return None
    if count != expected or type(found) is not list or len(found) > expected:
        return None
    return found


def read_commands(rows: list[Row]) -> None:
    """Read the command of every row that has not read it yet, in the fewest system calls.

    Per job: ``open`` relative to its directory's descriptor (opened once
    per run of rows in the same directory), one small ``read``, ``close``.
    Only what the listing's ``lstat`` saw as a regular file is opened, with
    ``O_NOFOLLOW | O_NONBLOCK``: a link swapped in meanwhile is not
    followed, a fifo not waited on.  A file that cannot be read has the
    command ``None``.  Rows the listing read already (``commands=True``)
    are skipped: this reads what was left, or a row asked for alone.
    """
    open_, read, close = os.open, os.read, os.close
    directory, fd = None, None
    try:
        for row in rows:
            if row._command is not _NOT_READ:
                continue
            if row.directory != directory:
                if fd is not None:
                    os.close(fd)
                directory, fd = row.directory, _open_dir(row.directory)
            command = None
            if fd is not None:
                try:
                    job = open_(row.name, _OPEN, dir_fd=fd)
                except OSError:  # gone, replaced by a link, or not ours to read
                    job = None
                if job is not None:
                    try:
                        head = read(job, _FIRST_READ)
                        if len(head) < _FIRST_READ:  # the whole file: ``batch`` needs no more
                            row._head = head
                        command = _command(job, head)
                    except OSError:  # an I/O error, a fifo with a writer: no command
                        pass
                    finally:
                        close(job)
            row._command = command
    finally:
        if fd is not None:
            os.close(fd)


def _queued(state: str, top: Path, now: float, only: str | None = None,
            read: bool = False) -> list[Row]:
    """The jobs of ``STATE/`` and ``STATE/CATEGORY/``, in claim order per category.

    One listing per directory (``_scan``; ``read``: each job file read
    too).  Sorted per directory as plain tuples (C compares them), and only
    then made ``Row``s.
    """
    rows: list[Row] = []
    todo = _tree(str(top), only, read)
    for category, found in todo:
        directory = os.path.join(top, category) if category else str(top)
        if state != states.UNCLAIMED:  # waiting: oldest first, whatever the priority
            found.sort(key=lambda t: (t[1], t[2]))
        else:
            found.sort()
        rows += [Row(state, directory, name, category, uid, mtime, now, None, mtime_ns,
                     -negative, command, head)
                 for negative, mtime_ns, name, uid, mtime, _ctime, command, head in found]
    return rows


def _tree(top: str, only: str | None = None,
          read: bool = False) -> list[tuple[str | None, list]]:
    """``(category, jobs)`` of a directory and its categories (``_scan`` each), in order.

    ``only``: one category's directory (``""``: the top one), not the whole tree;
    ``read``: the job files read too.
    """
    todo: list[tuple[str | None, list]] = []
    priorities: dict[str, int] = {}
    base = _open_dir(top)
    if base is None:
        return todo
    try:
        if only is None:
            found, categories = _scan(base, True, priorities, read)
            todo.append((None, found))
        else:
            categories = [only] if only else []
            if not only:
                todo.append((None, _scan(base, False, priorities, read)[0]))
        for category in categories:
            fd = _open_dir(category, base)
            if fd is not None:
                try:
                    todo.append((category, _scan(fd, False, priorities, read)[0]))
                finally:
                    os.close(fd)
    finally:
        os.close(base)
    return todo


def _running(jar: Jar, now: float, read: bool = False) -> list[Row]:
    """Jobs held by workers: each worker's ``job/`` and ``job/CATEGORY/`` (one listing each).

    A job is running from the moment its worker renamed it there, before the
    worker's link in ``claimed/`` is made; so this, not ``claimed/``, is the
    list.  Its running time is that link's age, or before the link is made
    the file's ``ctime`` (set by the claim's ``rename``).  A worker whose
    ``job/`` cannot be listed (a colleague's private worker directory) is
    seen through its link alone, as before (``_linked``).
    """
    rows: list[Row] = []
    unlisted = set()
    for worker in jar.workers():
        try:
            split_worker_name(worker)
        except ValueError:
            continue
        held = os.path.join(jar.worker_dir(worker), WORKER_JOB)
        todo = _tree(held, None, read)
        if not todo:  # missing or unreadable
            unlisted.add(worker)
        if not any(found for _, found in todo):
            continue
        try:
            started: float | None = os.lstat(jar.claimed_link(worker)).st_mtime
        except OSError:  # claimed, not yet linked (or finishing)
            started = None
        for category, found in todo:
            directory = os.path.join(held, category) if category else held
            for negative, mtime_ns, name, uid, _mtime, ctime, command, head in found:
                rows.append(Row(states.RUNNING, directory, name, category, uid,
                                ctime if started is None else started, now, worker,
                                mtime_ns, -negative, command, head))
    if unlisted:
        rows += _linked(jar, now, unlisted)
    rows.sort(key=lambda r: (-(r.age or 0), r.name))
    return rows


def _linked(jar: Jar, now: float, workers: set[str]) -> list[Row]:
    """The jobs of these workers that their links in ``claimed/`` name (one listing)."""
    from .files import is_real_dir
    from .find import running_jobs
    from .layout import held_category

    rows = []
    for worker, path in running_jobs(jar).values():
        home = os.path.join(jar.worker_dir(worker), WORKER_JOB, "")
        if worker not in workers or not str(path).startswith(home) \
                or not is_real_dir(home) or not is_real_dir(path.parent):  # planted links
            continue
        try:
            uid = os.lstat(path).st_uid
            since = os.lstat(jar.claimed_link(worker)).st_mtime
        except OSError:  # finished while we looked, or not even reachable
            continue
        rows.append(Row(states.RUNNING, str(path.parent), path.name,
                        held_category(jar.worker_dir(worker), path), uid, since, now, worker))
    return rows


def _now(jar: Jar) -> float:
    from .liveness import reading_now

    try:
        return reading_now(jar)
    except OSError:
        return time.time()


def list_jobs(mine: bool = False, user: str | None = None, category: str | None = None,
              state: str | None = None, batch: str | None = None,
              jar: Jar | None = None, commands: bool = False) -> list[Row]:
    """The jobs still in the jar (``states.IN_JAR``), as ``Row``s in the order shown above.

    ``mine``/``user``: only the jobs whose file that user owns; ``category``:
    only that category (``""``: uncategorized); ``state``: one of
    ``states.IN_JAR``; ``batch``: only the jobs whose ``#JJ --batch`` line
    names that id (this one filter reads every job file); ``commands``:
    read every row's command now (``read_commands``: the fastest way to
    have them all; otherwise each row reads its own when asked).
    """
    if state is not None and state not in states.IN_JAR:
        raise JobJarError(f"unknown state {state!r} (states of a job in the jar: "
                          f"{', '.join(states.IN_JAR)})")
    if category:
        check_category(category)
    uid, jar = selection(mine, user, batch, jar)
    read = commands or batch is not None
    now = _now(jar)
    rows: list[Row] = []
    collecting = gc.isenabled()
    gc.disable()  # 200,000 new objects, none of them garbage: the collector's passes
    try:  # over them were half the time it took to make the rows
        for each in (states.RUNNING, states.UNCLAIMED, states.WAITING):
            if state is not None and each != state:
                continue
            if each == states.RUNNING:
                found = _running(jar, now, read)
            else:
                found = _queued(each, jar.state_dir(each), now, category, read)
            rows.extend(found)
    finally:
        if collecting:
            gc.enable()
    if uid is not None:
        rows = [r for r in rows if r.uid == uid]
    if category is not None:
        rows = [r for r in rows if (r.category or "") == category]
    if read:  # (the few rows not read by the listing: running jobs seen through their link)
        read_commands(rows)
    if batch is not None:
        rows = [r for r in rows if r.batch == batch]
    return rows
