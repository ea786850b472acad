"""Claiming: pick the best job of a queue directory and rename it to oneself.

A ``QueueView`` keeps a heap of one unclaimed directory's jobs ordered by
priority (highest first), then age (oldest modification time first), then
name.  It does not list the directory for every claim: that would cost
O(queue) per job.  While jobs remain it re-lists it at most every
``rescan`` seconds, and only when the directory's modification time moved;
once the heap runs dry it re-lists at once if the mtime moved, else every
``rescan`` seconds (an unchanged mtime proves nothing on NFS); and only
files it has not seen before are ``stat``-ed.  Jobs submitted on this
node arrive even sooner, through ``add`` from a filesystem notification.

Entries taken by other workers stay in the heap until we try them: a failed
rename simply means someone else won, and we move on to the next.  A
directory this worker may not use (another user's, without our rights) is
not an error of the worker: the view empties itself, says why in
``problem`` (the worker logs it once), and tries again after ``BLOCKED``
seconds.
"""

from __future__ import annotations

import errno
import heapq
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from . import files
from .naming import priority_of

#: Errors of a rename that mean "the job is no longer there".
GONE = (errno.ENOENT, errno.ESTALE, errno.ENOTDIR)
#: Seconds a view waits before trying a directory it could not use again.
BLOCKED = 30.0


class QueueView:
    """A lazily refreshed, priority-ordered view of one unclaimed directory."""

    def __init__(self, path: Path, rescan: float = 1.0, skip_dirs: bool = False) -> None:
        self.path = path
        self.rescan = rescan
        self.skip_dirs = skip_dirs  # in unclaimed/ itself, directories are categories
        self.heap: list[tuple[int, int, str]] = []
        self.known: set[str] = set()
        self.dir_mtime: int | None = None
        self.scanned_at = float("-inf")
        self.linked = False  # the queue "directory" is a symbolic link: never follow it
        self.problem: str | None = None  # why this directory cannot be used, if it cannot
        self.blocked_until = float("-inf")
        # jobs this worker gave back (placement): name -> when it may try them again
        self.deferred: dict[str, float] = {}
        self.next_undefer = float("inf")

    def _push(self, name: str, entry: os.DirEntry | None = None) -> None:
        try:
            info = entry.stat(follow_symlinks=False) if entry else os.lstat(self.path / name)
        except OSError:
            return
        if self.skip_dirs and (info.st_mode & 0o170000) == 0o040000:
            return
        self.known.add(name)
        heapq.heappush(self.heap, (-priority_of(name), info.st_mtime_ns, name))

    def add(self, name: str) -> None:
        """A job just appeared (a notification): put it in the view."""
        # An event about the directory itself has no name: never "claim" the queue itself.
        if not name or "/" in name or name.startswith(".") or name in self.known \
                or self.linked or name in self.deferred:
            return
        self._push(name)

    def refresh(self, force: bool = False) -> None:
        """Re-list the directory if it changed; stat only new entries."""
        now = time.monotonic()
        if not force and self.heap and now - self.scanned_at < self.rescan:
            return
        if now < self.blocked_until:
            return
        try:
            info = os.lstat(self.path)
        except OSError:
            info = None
        # A category that is a symbolic link would make us take files from outside the jar.
        self.linked = info is not None and not stat.S_ISDIR(info.st_mode)
        if info is None or self.linked:
            self.heap, self.known, self.dir_mtime = [], set(), None
            return
        mtime = info.st_mtime_ns
        # An unchanged mtime does not prove an unchanged directory: timestamps
        # may have whole seconds, and on NFS or sshfs the attributes and the
        # listing are cached separately.  So an empty view re-lists at least
        # every ``rescan`` seconds whatever the mtime says.
        if mtime == self.dir_mtime and (self.heap or now - self.scanned_at < self.rescan):
            return
        self.dir_mtime, self.scanned_at = mtime, now
        try:
            with os.scandir(self.path) as listing:
                entries = {e.name: e for e in listing if not e.name.startswith(".")}
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                self.block(f"cannot list {self.path}: {exc.strerror}")
            return
        self.problem = None
        fresh = entries.keys() - self.known
        self.known &= entries.keys()
        for name in fresh:
            self._push(name, entries[name])
        if len(self.heap) > 2 * len(self.known) + 64:  # drop entries others took
            self.heap = [k for k in self.heap if k[2] in self.known]
            heapq.heapify(self.heap)

    def block(self, problem: str) -> None:
        """Stop using this directory for ``BLOCKED`` seconds, saying why."""
        self.problem = problem
        self.heap, self.known, self.dir_mtime = [], set(), None
        self.blocked_until = time.monotonic() + BLOCKED

    def defer(self, name: str, seconds: float) -> None:
        """Leave job ``name`` (given back by this worker) out of the view for ``seconds``.

        It stays ``known``, so that neither a re-listing nor a notification
        puts it back before its time; then ``claim`` puts it back in its
        place, by its priority and modification time, if it is still there.
        """
        self.known.add(name)
        until = self.deferred[name] = time.monotonic() + seconds
        self.next_undefer = min(self.next_undefer, until)

    def _undefer(self) -> None:
        """Put deferred jobs whose time has come back in the heap (if still in the queue)."""
        now = time.monotonic()
        if now < self.next_undefer:
            return
        for name, until in list(self.deferred.items()):
            if until <= now:
                del self.deferred[name]
                if name in self.known:
                    self.known.discard(name)
                    self._push(name)
        self.next_undefer = min(self.deferred.values(), default=float("inf"))

    def claim(self, dest_dir: Path, accept: Callable[[Path], bool] | None = None) -> Path | None:
        """Rename the best job into ``dest_dir``; ``None`` if none could be had.

        ``accept`` (a pilot's time limit) may pass over a job before it is
        moved: it leaves the view for good (it stays known, so a re-listing
        does not bring it back) and stays in the queue for other workers.
        """
        if self.deferred:
            self._undefer()
        if self.heap:  # an empty view is refreshed just below, once
            self.refresh()
        # (a view whose directory is a symbolic link has an empty heap: it
        # returns None below, and looks again at every claim)
        while True:
            if not self.heap:
                self.refresh(force=True)
                if not self.heap:
                    return None
            name = self.heap[0][2]
            if accept is not None and not accept(self.path / name):
                heapq.heappop(self.heap)
                continue
            dest = dest_dir / name
            try:
                os.rename(self.path / name, dest)
            except OSError as exc:
                if exc.errno == errno.ENOENT and not files.is_real_dir(dest_dir):
                    try:
                        files.make_dir(dest_dir)  # our job/ (or job/CAT/) went away
                    except OSError as again:
                        self.block(f"cannot make {dest_dir}: {again.strerror or again}")
                        return None
                    continue
                heapq.heappop(self.heap)
                self.known.discard(name)
                if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    # One of our own directories has that name (an uncategorized job
                    # called like one of our categories): not ours to take.
                    continue
                # On NFS a retransmitted rename can report failure after it
                # happened: the destination tells the truth.
                if os.path.lexists(dest):
                    return dest
                if exc.errno in GONE:
                    continue
                # EACCES, EPERM, EROFS...: the directory, not this job, is the problem
                self.block(f"cannot take jobs from {self.path}: {exc.strerror}")
                return None
            heapq.heappop(self.heap)
            self.known.discard(name)
            return dest
