"""Live output: where a running job's output is, and following it as it is written.

A running job's default output goes to hidden files of its own,
``output/.W.TOKEN.out`` and ``.err`` (``layout.Jar.hidden_output``), which
its worker renames to ``output/NAME.out``/``.err`` when it ends
(``execute.keep_outputs``).  Finding them by the job's name costs the worker
no filesystem operation: the line it writes to its log anyway when the job
starts names them (``start_message``)::

    2026-11-30T13:00:00.000000Z start NAME pid=4242 stdout=.rain.77.1a2b3c.out stderr=...

So a reader goes from the name to the worker (``claimed/W``, as ``find``
does), to the last ``start NAME`` line after the last ``claim NAME`` line of
``workers/W/log``, to the files.  A stream that line does not name goes
where the job said (``#JJ --output``) or, on a retry, is appended to
``output/NAME.out`` itself.  A shell user can do the same with ``readlink``
and ``grep`` (``docs/protocol.md``).

Following must neither lose nor repeat bytes across the rename at the end,
nor show another job's: a worker hands a job's empty output file to its next
job.  So a file is followed by identity (device and inode: the rename keeps
it, and the place reached in it), and bytes read from a running job's file
are shown only if the job was still held by its worker after they were
read (its next job cannot have started before that); otherwise they are
read again from the job's final file, if that is the same file.

In a team jar the log is the group's to write, and ``output/`` too
(``docs/security.md``): a name read from the log is used only in its exact
form (``layout.Jar.hidden_stream``: a file directly in ``output/``), and a
file is followed only if it is a regular file, opened without following a
link, and owned by the worker's own user.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import IO, Callable

from . import states
from .find import Location
from .layout import WORKER_LOG, Jar
from .naming import printable

__all__ = ["follow", "live_output"]

#: The two streams, named as in a record.
STREAMS = ("stdout", "stderr")
#: How much of the end of a worker's log is searched for a job's start line (then, once, more).
LOG_TAIL = 64 * 1024
LOG_MAX = 1024 * 1024
#: Pauses between two looks while following: short while output comes, then at most this.
MIN_POLL, MAX_POLL = 0.05, 0.5
#: How often the start line is looked up again while a job runs (a retry on the same worker).
RELOOK = 2.0
#: Most bytes read from one stream at a time.
CHUNK = 1 << 20

_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def start_message(name: str, pid: int, fresh: list[tuple[str, str, str]]) -> str:
    """The worker's log message when a job starts, naming its hidden output files.

    ``fresh``: ``(record key, hidden file, final name)`` for each stream the
    worker opened for this job alone (``Worker.choose_outputs``).
    """
    hidden = "".join(f" {key}={os.path.basename(path)}" for key, path, _ in fresh)
    return f"start {name} pid={pid}{hidden}"


def _open(path: str | os.PathLike, uid: int | None) -> tuple[int, os.stat_result]:
    """Open a file for reading: never through a link, never a fifo, only ``uid``'s own."""
    fd = os.open(path, _READ)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        if uid is not None and info.st_uid != uid:
            raise OSError(errno.EPERM, "not the worker's own file", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _worker_uid(jar: Jar, worker: object) -> int | None:
    """The owner of a worker's directory (a real one): whose files its jobs' output are."""
    if not isinstance(worker, str) or not worker or "/" in worker or worker.startswith("."):
        return None
    try:
        info = os.lstat(jar.worker_dir(worker))
    except OSError:
        return None
    return info.st_uid if stat.S_ISDIR(info.st_mode) else None


def started(text: str, name: str) -> dict | None:
    """What the log ``text`` says of the last start of job ``name``, or ``None``.

    Only a ``start`` line after the last ``claim NAME`` line counts (a line
    of an earlier attempt names files that are no longer this job's).  The
    line must have the exact form ``start NAME pid=P [stdout=F] [stderr=F]``.
    Returns ``{"pid": P, "stdout": F, "stderr": F}`` (a stream not named: absent).
    """
    shown = re.escape(printable(name))
    begin = 0
    for claim in re.finditer(rf"^\S+ claim {shown}$", text, re.M):
        begin = claim.end()
    starts = re.compile(rf"^\S+ start {shown} pid=(\d+)((?: std(?:out|err)=\S+)*)$", re.M)
    last = None
    for found in starts.finditer(text, begin):
        last = found
    if last is None:
        return None
    fields: dict = dict(item.split("=", 1) for item in last.group(2).split())
    fields["pid"] = int(last.group(1))
    return fields


def _start_of(jar: Jar, worker: str, name: str, uid: int | None) -> dict | None:
    """``started`` of the end of worker's log (its own file: raises ``OSError`` otherwise)."""
    fd, info = _open(jar.worker_dir(worker) / WORKER_LOG, uid)
    try:
        for span in (LOG_TAIL, LOG_MAX):
            begin = max(0, info.st_size - span)
            text = os.pread(fd, info.st_size - begin, begin).decode("utf-8", "replace")
            if begin:  # the first line is cut: not a line
                text = text.partition("\n")[2]
            found = started(text, name)
            if found is not None or not begin:
                return found
        return None
    finally:
        os.close(fd)


def _own_outputs(path: Path) -> dict[str, str | None]:
    """The job's own ``--output``/``--error`` files, from its ``#JJ`` lines (if readable)."""
    from . import depend
    from . import directives as jjdir

    try:
        opts = jjdir.parse(depend.read_head(path))
    except Exception:  # someone's file: its worker fails it with the reason
        return {}
    return {"stdout": opts.output, "stderr": opts.error}


def _paths(jar: Jar, name: str, where: Location, uid: int | None) -> dict | None:
    """Where each stream of the running job goes now; ``None`` until it has started.

    Also ``pid``: the job's process, which tells one attempt from the next.
    """
    try:
        fields = _start_of(jar, where.worker, name, uid)
    except OSError:  # no log, or one that is not the worker's own: nothing to trust
        return None
    if fields is None:
        return None
    own = _own_outputs(where.path)
    found: dict = {"pid": fields["pid"]}
    for key, suffix, default in zip(STREAMS, ("out", "err"), jar.default_output(name)):
        hidden = fields.get(key)
        if own.get(key):
            found[key] = os.path.join(jar.output, own[key])
        elif hidden is None:  # a retry: appended to the job's own output file
            found[key] = str(default)
        elif jar.hidden_stream(where.worker, hidden) == suffix:
            found[key] = str(jar.output / hidden)
        else:  # not a name the worker writes: planted
            found[key] = None
    return found


def live_output(name: str, jar: Jar | None = None,
                where: Location | None = None) -> dict[str, str | None] | None:
    """Where a running job's output is written now: ``{"stdout": path, "stderr": path}``.

    ``None`` if the job is not running; a stream is ``None`` while it is not
    known (claimed but not started yet).  A path is where this node sees
    it; ``follow`` reads it safely (it may be another user's planted link).
    """
    from .find import locate

    jar = jar or Jar.from_config()
    where = where or locate(name, jar)
    if where is None or where.state != states.RUNNING or where.worker is None:
        return None
    found = _paths(jar, name, where, _worker_uid(jar, where.worker)) or {}
    return {key: found.get(key) for key in STREAMS}


class _Tail:
    """One stream being followed: its file (by identity), how much was shown, and where to."""

    def __init__(self, sink: IO) -> None:
        self.sink = sink
        self.fd = -1
        self.ident: tuple[int, int] | None = None
        self.shown = 0
        self.decoder = None
        if isinstance(sink, io.TextIOBase) and getattr(sink, "buffer", None) is None:
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def attach(self, path: str | os.PathLike, uid: int | None) -> None:
        """Follow the file at ``path`` from now on (raises ``OSError``).

        The same file (a rename at the end, a retry appending to it) keeps
        its place; another file is shown from its beginning.
        """
        fd, info = _open(path, uid)
        ident = (info.st_dev, info.st_ino)
        if ident == self.ident:
            os.close(fd)
            return
        self.close()
        self.fd, self.ident, self.shown = fd, ident, 0

    def read(self) -> bytes:
        """What was written past the place reached (not shown yet: see ``show``)."""
        return os.pread(self.fd, CHUNK, self.shown) if self.fd >= 0 else b""

    def show(self, data: bytes) -> None:
        """Write bytes read by ``read`` to the sink, and move on past them."""
        if not data:
            return
        if self.decoder is not None:
            self.sink.write(self.decoder.decode(data))
        elif isinstance(self.sink, io.TextIOBase):  # sys.stdout: its bytes, unchanged
            self.sink.flush()
            self.sink.buffer.write(data)
            self.sink.buffer.flush()
        else:
            self.sink.write(data)
        self.sink.flush()
        self.shown += len(data)

    def drain(self) -> None:
        """Show everything up to the end of the file."""
        while True:
            data = self.read()
            if not data:
                return
            self.show(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.ident = -1, None


def _held(where: Location) -> bool:
    """Does the worker still hold the job (``workers/W/job/[C/]NAME``)?"""
    return where.path is not None and os.path.lexists(where.path)


def _local(jar: Jar, name: str, path: str) -> str:
    """A path of the job's record as this node sees it (nodes may mount the jar elsewhere)."""
    head, base = os.path.split(path)
    worker_side = os.path.basename(head) == "output"
    if worker_side and (base in (f"{name}.out", f"{name}.err") or base.startswith(".")):
        return str(jar.output / base)
    return path


class Follower:
    """Following one job (``follow``): the attempt being followed and its two streams."""

    def __init__(self, name: str, out: IO | None = None, err: IO | None = None,
                 jar: Jar | None = None, problem: Callable[[str], None] | None = None) -> None:
        """Check the name (``JobJarError`` if no job has it); ``follow`` says the rest."""
        from .jobs import _find

        self.jar, self.name = jar or Jar.from_config(), name
        _find(name, self.jar)  # an unknown name is an error at once
        self.problem = problem or (lambda message: None)
        self.tails = {"stdout": _Tail(sys.stdout if out is None else out),
                      "stderr": _Tail(sys.stderr if err is None else err)}
        self.where: Location | None = None  # the attempt running now
        self.pid: int | None = None  # its process, once its start line was read
        self.next_look = 0.0
        self.said: set[str] = set()

    def say(self, message: str) -> None:
        """Report a problem once (not at every look)."""
        if message not in self.said:
            self.said.add(message)
            self.problem(message)

    def attach(self, key: str, path: str | None, uid: int | None) -> None:
        if path is None:
            return
        try:
            self.tails[key].attach(path, uid)
        except FileNotFoundError:
            pass  # not made yet, or renamed just now: looked up again
        except OSError as exc:
            self.say(f"not following {printable(path)}: {exc.strerror or exc}")

    def look_up(self) -> None:
        """Find the running attempt's files (again: a retry may have started)."""
        self.next_look = time.monotonic() + RELOOK
        uid = _worker_uid(self.jar, self.where.worker)
        found = _paths(self.jar, self.name, self.where, uid)
        if found is None or found["pid"] == self.pid:
            return
        self.pid = found["pid"]
        self.attach("stdout", found["stdout"], uid)
        if found["stderr"] != found["stdout"]:  # one file for both: shown once
            self.attach("stderr", found["stderr"], uid)

    def step(self) -> bool:
        """Show what the running attempt wrote since the last step; False if it is not held."""
        if self.pid is None or time.monotonic() >= self.next_look:
            self.look_up()
        chunks = {key: tail.read() for key, tail in self.tails.items()}
        if not _held(self.where):  # they may hold the next job's bytes: read them again later
            return False
        for key, data in chunks.items():
            self.tails[key].show(data)
        return any(chunks.values())

    def finish(self, record: dict) -> None:
        """Show the rest of the job's output from its final files (its record names them)."""
        uid = _worker_uid(self.jar, record.get("worker"))
        paths = {key: record.get(key) for key in STREAMS}
        for key in STREAMS:
            path = paths[key]
            if not isinstance(path, str) or (key == "stderr" and path == paths["stdout"]):
                continue
            self.attach(key, _local(self.jar, self.name, path), uid)
            self.tails[key].drain()

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()

    def run(self) -> dict:
        """Show the output until the job has left the jar; its final record.

        May be called again after it was interrupted (Ctrl-C): it goes on
        from where it was, without showing anything twice.
        """
        from .jobs import _left_jar, _locate

        pause = MIN_POLL
        while True:
            if self.where is not None and self.step():
                pause = MIN_POLL  # more may come at once
                continue
            if self.where is None or not _held(self.where):
                record = _left_jar(self.jar, self.name)
                if record is not None:
                    self.finish(record)
                    return record
                where = _locate(self.name, self.jar)
                running = where is not None and where.state == states.RUNNING
                if not running or self.where is None or where.path != self.where.path \
                        or where.worker != self.where.worker:
                    self.pid = None  # another attempt: its files are looked up afresh
                self.where = where if running else None
                if running:
                    continue
            time.sleep(pause)
            pause = min(pause * 1.5, MAX_POLL)


def follow(name: str, out: IO | None = None, err: IO | None = None, jar: Jar | None = None,
           problem: Callable[[str], None] | None = None) -> dict:
    """Write job ``name``'s output to ``out`` and ``err`` as it is written; return its record.

    Everything the job wrote before following started is shown too, and
    the rest after its end; it returns when the job has left the jar (its
    final record; ``{"name": ..., "status": None}`` if it left none).  A job
    still queued or waiting is waited for.  ``out``/``err`` default to
    ``sys.stdout``/``sys.stderr``; text streams without a binary buffer get
    the output decoded as UTF-8.  ``problem`` is told, once each, about
    files that are not followed (a link, another user's file); by default
    nothing is said.  An unknown name raises ``JobJarError``.
    """
    follower = Follower(name, out, err, jar, problem)
    try:
        return follower.run()
    finally:
        follower.close()
