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
rename simply means someone else won, and we move on to the next.
"""

from __future__ import annotations

import errno
import heapq
import os
import stat
import time
from pathlib import Path

from .naming import priority_of

#: Errors of a rename that mean "the job is no longer there".
GONE = (errno.ENOENT, errno.ESTALE, errno.ENOTDIR)


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
        if not name.startswith(".") and name not in self.known and not self.linked:
            self._push(name)

    def refresh(self, force: bool = False) -> None:
        """Re-list the directory if it changed; stat only new entries."""
        now = time.monotonic()
        if not force and self.heap and now - self.scanned_at < self.rescan:
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
        except OSError:
            return
        fresh = entries.keys() - self.known
        self.known &= entries.keys()
        for name in fresh:
            self._push(name, entries[name])
        if len(self.heap) > 2 * len(self.known) + 64:  # drop entries others took
            self.heap = [k for k in self.heap if k[2] in self.known]
            heapq.heapify(self.heap)

    def claim(self, dest_dir: Path) -> Path | None:
        """Rename the best job into ``dest_dir``; ``None`` if none could be had."""
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
            dest = dest_dir / name
            try:
                os.rename(self.path / name, dest)
            except OSError as exc:
                if exc.errno == errno.ENOENT and not os.path.isdir(dest_dir):
                    os.makedirs(dest_dir, exist_ok=True)  # our job/ (or job/CAT/) went away
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
                raise
            heapq.heappop(self.heap)
            self.known.discard(name)
            return dest
