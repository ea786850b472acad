"""Python calls through the jar: the files of ``jobjar.Executor`` and who may be trusted.

A call travels as files, not through a socket, so that it can run on any
node that mounts the jar.  Each executor has its own directory
``calls/NODE.PID.TOKEN/`` (``layout.Jar.caller_dir``) holding, per call or
chunk of a map, ``ID.call`` (the pickled arguments, and the function unless
a map's function was written once as ``ID.fn``), and ``ID.result``, which the
job (``jobjar.runner``) writes.  Every file is a small header pickled with the
standard library (``Header``: the Python version, the caller's ``sys.path``)
followed by a ``cloudpickle`` payload, so that the runner can say "wrong
Python version" or "missing module" before it unpickles anything else.

Unpickling runs code, so both sides open these files through
``open_trusted``: never through a link, only a regular file whose owner is
one the reader trusts, in a directory whose owner is trusted and where
nobody else can replace a file (not writable by others, or sticky).  The
caller's directory is sticky and takes the group and other bits of
``calls/``, so a worker account of the team can add its results while no
one but the owner can remove or replace the caller's files.

Who is trusted (``docs/security.md``): the runner unpickles a call only if
the job file's owner wrote it; the caller unpickles a result only if it
wrote it itself or its owner may take jobs from the call's queue (could
have claimed the job, and so run anything in its place anyway).
"""

from __future__ import annotations

import itertools
import os
import pickle
import stat
import time
from pathlib import Path

from . import files
from .errors import JobJarError
from .layout import CALL_FILE, RESULT_FILE, Jar

#: Open flags of a file that is unpickled: never a link, never a blocking fifo.
READ = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
#: A caller directory of a dead caller (or of another node's) is kept this long
#: without activity before ``recover_jobs`` removes it (if no job needs it).
ABANDONED = 24 * 3600.0


class Untrusted(JobJarError):
    """A call or result file that must not be unpickled (wrong owner, a link, ...)."""


def owner_name(uid: int) -> str:
    from .records import owner_name as name

    return name(uid)


def open_trusted(directory: Path, name: str, owners: object, what: str) -> bytes:
    """The bytes of ``directory/name`` if nobody but a trusted user could have put them there.

    ``owners`` is a set of uids or a function ``uid -> bool``.  The directory
    is opened without following a link and must belong to a trusted user
    and let nobody else replace its files (not writable by group or others,
    or sticky); the file is opened relative to it, without following a
    link, and must be a regular file of a trusted owner.
    """
    trusted = owners if callable(owners) else (lambda uid: uid in owners)
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                      | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise Untrusted(f"cannot open {directory}: {exc.strerror}") from None
    try:
        info = os.fstat(dfd)
        if not trusted(info.st_uid):
            raise Untrusted(f"{directory} belongs to {owner_name(info.st_uid)}, who is not "
                            f"trusted with this {what}: not unpickled")
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise Untrusted(f"{directory} is writable by others and not sticky: its {what} "
                            "could have been replaced; not unpickled")
        try:
            fd = os.open(name, READ, dir_fd=dfd)
        except OSError as exc:
            raise Untrusted(f"cannot open the {what} {directory / name}: "
                            f"{exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Untrusted(f"the {what} {directory / name} is not a regular file")
            if not trusted(info.st_uid):
                raise Untrusted(f"the {what} {directory / name} was written by "
                                f"{owner_name(info.st_uid)}, who is not trusted with it: "
                                "not unpickled")
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


# -- the file format --------------------------------------------------------------


def header(function: str | None = None) -> dict:
    """What the runner checks before unpickling a payload (plain types only)."""
    import sys

    return {"python": list(sys.version_info[:2]), "executable": sys.executable,
            "path": [os.path.abspath(p or ".") for p in sys.path], "function": function}


def pack(head: dict, payload: bytes) -> bytes:
    """A header (standard pickle of plain values) followed by the payload."""
    return pickle.dumps(head, protocol=4) + payload


def unpack(data: bytes) -> tuple[dict, bytes]:
    """Split a file into its header and its payload (only from ``open_trusted``)."""
    import io

    stream = io.BytesIO(data)
    head = pickle.Unpickler(stream).load()
    if not isinstance(head, dict):
        raise ValueError("not a call file of jobjar")
    return head, data[stream.tell():]


# -- the caller's directory --------------------------------------------------------


class CallerDir:
    """One executor's ``calls/NODE.PID.TOKEN/``, made on first use."""

    def __init__(self, jar: Jar, node: str) -> None:
        self.jar = jar
        self.name = f"{node}.{os.getpid()}.{files.token()}"
        self.path = jar.caller_dir(self.name)
        self.made = False
        self.file_mode = 0o600
        self.ids = itertools.count(1)  # next() is atomic: submit() may run in several threads

    def ensure(self) -> None:
        """Make the directory: sticky, owner-only unless ``calls/`` is shared.

        The group and other bits of ``calls/`` (which takes the jar's mode)
        let a worker account of the team write results; the sticky bit keeps
        everyone but the owner from removing or replacing its files.
        """
        if self.made and files.is_real_dir(self.path):
            return
        try:
            files.make_dir(self.jar.calls)
            shared = stat.S_IMODE(os.lstat(self.jar.calls).st_mode) & 0o2077
            try:
                os.mkdir(self.path, 0o700)
            except FileExistsError:
                if not (files.is_real_dir(self.path)
                        and os.lstat(self.path).st_uid == os.geteuid()):
                    raise
            os.chmod(self.path, 0o700 | stat.S_ISVTX | shared)
        except OSError as exc:
            raise JobJarError(f"cannot make {self.path}: {exc.strerror}") from None
        self.file_mode = 0o600 | (shared & 0o044)
        self.made = True

    def new_id(self) -> str:
        return f"c{next(self.ids)}"

    def write(self, call_id: str, suffix: str, data: bytes) -> None:
        """Write ``ID.call`` or ``ID.fn`` (atomically, never through a planted name)."""
        self.ensure()
        try:
            files.write_new(self.path / f"{call_id}{suffix}", data, self.file_mode)
        except OSError as exc:
            raise JobJarError(f"cannot write the call in {self.path}: {exc.strerror}") from None

    def results(self) -> set[str]:
        """The ids of the calls whose result file is there."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return set()
        return {n[: -len(RESULT_FILE)] for n in names
                if n.endswith(RESULT_FILE) and not n.startswith(".")}

    def read_result(self, call_id: str, trusted) -> bytes | None:
        """The result bytes of a call (``None``: no result file); ``Untrusted`` if not ours."""
        if not os.path.lexists(self.path / f"{call_id}{RESULT_FILE}"):
            return None
        return open_trusted(self.path, f"{call_id}{RESULT_FILE}", trusted, "result")

    def remove(self, call_id: str, *suffixes: str) -> None:
        """Remove a call's files (ours, and the result another user wrote if we may)."""
        for suffix in suffixes or (CALL_FILE, RESULT_FILE):
            try:
                files.unlink(self.path / f"{call_id}{suffix}")
            except OSError:
                pass

    def close(self) -> None:
        """Remove the directory if nothing is left in it."""
        if self.made:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def result_trust(jar: Jar, category: str | None):
    """Who may have written a result of a call queued in ``category``: a ``uid -> bool``.

    Ourselves, or anyone who may take jobs from that queue (write it, by
    its owner, group and mode bits): such a user could claim the job and
    return anything, so the file tells us nothing worse.
    """
    from .access import may_write

    me = os.geteuid()
    queue = jar.queue_dir(category)
    return lambda uid: uid == me or may_write(uid, queue)


# -- recovery --------------------------------------------------------------------


def _caller_alive(caller: str, node: str) -> bool | None:
    """Is the caller that made ``calls/CALLER`` alive (``None``: another node's, unknown)?"""
    parts = caller.split(".")
    if len(parts) < 3 or not parts[-2].isdigit():
        return None
    if ".".join(parts[:-2]) != node:
        return None
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _needed(jar: Jar) -> set[str]:
    """Caller directories named by a job still in the jar (its runner will read them)."""
    from .jobs import jobs_in_jar

    needed = set()
    marker = b"-m jobjar.runner "
    for where in jobs_in_jar(jar):
        try:
            fd = os.open(where.path, READ)
            try:
                head = os.read(fd, 16384)
            finally:
                os.close(fd)
        except OSError:
            continue
        at = head.find(marker)
        if at >= 0:
            words = head[at + len(marker):].split(b"\n")[0].split()
            if words:
                needed.add(os.fsdecode(words[0].strip(b"'\"")))
    return needed


def _caller_name(name: str) -> bool:
    """Is ``name`` one of ours, ``NODE.PID.TOKEN``?  Nothing else in ``calls/`` is removed."""
    parts = name.split(".")
    return (len(parts) >= 3 and parts[-2].isdigit() and len(parts[-1]) == 12
            and all(c in "0123456789abcdef" for c in parts[-1]) and not name.startswith("."))


def _remove_caller(top: int, name: str) -> bool:
    """Remove ``calls/NAME`` and its files, never through a link (all relative to ``top``)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                     | getattr(os, "O_NOFOLLOW", 0), dir_fd=top)
    except OSError:
        return False
    try:
        for entry in os.listdir(fd):
            try:
                os.unlink(entry, dir_fd=fd)  # a subdirectory or another's file stays
            except OSError:
                pass
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=top)
        return True
    except OSError:
        return False


def recover(jar: Jar, node: str) -> list[dict]:
    """Remove caller directories of dead callers that no job in the jar needs.

    A caller on this node is dead when its pid is gone; another node's caller
    directory is removed only after a day without change.  A directory of
    another user is emptied only as far as the sticky bit lets us.  All of
    it relative to ``calls/`` opened without following a link, so a link
    planted at ``calls/`` cannot make recovery remove anything elsewhere.
    """
    done: list[dict] = []
    try:
        top = os.open(jar.calls, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                      | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return done
    try:
        needed = None
        now = time.time()
        for name in os.listdir(top):
            try:
                info = os.stat(name, dir_fd=top, follow_symlinks=False)
            except OSError:
                continue
            if not _caller_name(name) or not stat.S_ISDIR(info.st_mode):
                continue
            alive = _caller_alive(name, node)
            if alive or (alive is None and now - info.st_mtime < ABANDONED):
                continue
            if needed is None:
                needed = _needed(jar)
            if name not in needed and _remove_caller(top, name):
                done.append({"path": f"calls/{name}",
                             "action": "removed the call files of a caller that is gone"})
    except OSError:
        pass
    finally:
        os.close(top)
    return done
