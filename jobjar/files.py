"""Filesystem steps that are safe in a directory other people write.

A shared jar is a hostile place (``docs/security.md``): another user may
put a symbolic link, a directory or a fifo where the jar expects its own
file.  Every write, removal and directory creation of the package goes
through these helpers, which never follow a link the jar did not make:

* files are created with ``O_EXCL`` (a planted link or file makes the
  create fail instead of writing through it) under names nobody can guess,
  then renamed into place;
* existing files are opened with ``O_NOFOLLOW``;
* a tree is removed only after ``lstat`` shows a real directory, and
  ``shutil.rmtree`` never follows links inside it;
* directories the jar creates take the permission bits of the directory
  they are created in, whatever the creator's umask, so a colleague's
  ``umask 077`` cannot make a category that the other workers cannot use.
"""

from __future__ import annotations

import os
import stat

#: Flags of a file created anew, never through an existing name.
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
#: Flags of an existing file opened for appending, never through a link.
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def unlink(path: str | os.PathLike) -> bool:
    """Remove a file (or link) if it is there; True if it was removed.

    Removing a name never follows a link, so this is safe on any entry.
    """
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def is_real_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a directory itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def remove_tree(path: str | os.PathLike) -> bool:
    """Remove a directory tree that is really there; a link is only unlinked.

    ``shutil.rmtree`` on a link to someone's home would empty that home;
    here the link itself goes and nothing behind it is touched.  Returns
    True if something was removed.
    """
    import shutil

    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        try:
            os.unlink(path)
            return True
        except OSError:
            return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def token() -> str:
    """A short random word for names other users must not predict."""
    return os.urandom(6).hex()


def write_new(path: str | os.PathLike, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` atomically, never through a planted name.

    The bytes go to a dot-file with a random name created with ``O_EXCL``,
    then one rename puts it in place (a rename replaces a link at ``path``
    rather than writing through it).  A reader never sees half a file.
    """
    path = os.fspath(path)
    head, tail = os.path.split(path)
    tmp = os.path.join(head, f".{tail[:40]}.{os.getpid()}.{token()}.tmp")
    fd = os.open(tmp, CREATE, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        unlink(tmp)
        raise


def rename_into(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst``, making ``dst``'s directory (``make_dir``) if it is missing.

    The rename comes first: the directory is almost always there, so the
    common case costs one system call.  A ``src`` that vanished (someone
    else moved it first) raises ``FileNotFoundError`` as it is.
    """
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        if not os.path.lexists(src):
            raise
        make_dir(os.path.dirname(os.fspath(dst)) or ".")
        os.rename(src, dst)


def make_dir(path: str | os.PathLike) -> None:
    """Create a directory (and missing parents) with the permissions of its parent.

    The mode bits (group and other permissions, setgid) are copied from the
    parent directory rather than taken from the umask: a category made by a
    submitter with ``umask 077`` in a group-writable ``unclaimed/`` is
    group-writable too, so every worker of the team can use it.  An existing
    directory is left alone; something else at ``path`` raises
    ``FileExistsError``.
    """
    from pathlib import Path  # (not at the top: the plain submit_job never gets here)

    path = Path(path)
    if is_real_dir(path):
        return
    parent = path.parent
    if not is_real_dir(parent) and parent != path:
        make_dir(parent)
    try:
        parent_mode = stat.S_IMODE(os.lstat(parent).st_mode)
    except OSError:
        parent_mode = 0o755
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if is_real_dir(path):
            return
        raise
    mode = parent_mode & (0o777 | stat.S_ISGID)
    try:
        os.chmod(path, mode | 0o700)
    except OSError:
        pass


def read_regular(path: str | os.PathLike, limit: int) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes, else ``None``.

    Never through a link, never blocking on a fifo or a device: records,
    manifests and the like are files other people may replace, and a plain
    ``open`` of a fifo would block the reader for good.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    return read_fd(fd, limit)


def read_fd(fd: int, limit: int) -> bytes | None:
    """``read_regular`` of a file already open (without following a link); closes ``fd``.

    ``None`` unless it is a regular file of at most ``limit`` bytes (it is
    read to its end, in case it grew since its ``fstat``).
    """
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit:  # (it may have grown since the fstat: read until the end)
            want = max(info.st_size + 4096 - size, 4096)
            chunk = os.read(fd, want)
            chunks.append(chunk)
            size += len(chunk)
            if len(chunk) < want:  # a short read of a regular file: its end
                break
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if size > limit else b"".join(chunks)


def read_tail(path: str | os.PathLike, size: int) -> tuple[bytes, bool]:
    """The last ``size`` bytes of a regular file, and whether it had more before them.

    Never through a link, never blocking on a fifo: ``(b"", False)`` for
    anything that is not a regular file one may read (a job's stderr, a
    worker's log: files other people may replace).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return b"", False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b"", False
        start = max(0, info.st_size - size)
        return os.pread(fd, size, start), start > 0
    except OSError:
        return b"", False
    finally:
        os.close(fd)
