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

With ``JJ_FAIR_SHARE`` or ``JJ_USER_LIMIT`` a worker uses a
``FairQueueView`` instead, which also keeps a heap per job owner and picks
among the owners' best jobs (``docs/guide.md``, "Fair share between
users"); without them nothing of it runs.
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

    def _stat(self, name: str, entry: os.DirEntry | None) -> os.stat_result | None:
        """A new entry's ``lstat``, or ``None`` if it is gone or is not for us (a category)."""
        try:
            info = entry.stat(follow_symlinks=False) if entry else os.lstat(self.path / name)
        except OSError:
            return None
        if self.skip_dirs and (info.st_mode & 0o170000) == 0o040000:
            return None
        return info

    def _push(self, name: str, entry: os.DirEntry | None = None) -> None:
        info = self._stat(name, entry)
        if info is None:
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
            self._prune()

    def _prune(self) -> None:
        """Drop the entries of jobs that left the directory (others took them)."""
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
            name = self._next()
            if name is None:  # (fair share: every user with jobs here is at the limit)
                return None
            if accept is not None and not accept(self.path / name):
                self._drop(name)
                self.known.add(name)  # passed over for good: a re-listing must not bring it back
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
                self._drop(name)
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
            self._drop(name)
            return dest

    def _next(self) -> str | None:
        """The job to try next: the best of the heap."""
        return self.heap[0][2]

    def _drop(self, name: str) -> None:
        """Forget job ``name``, just tried (``_next`` returned it)."""
        heapq.heappop(self.heap)
        self.known.discard(name)


# -- fair share and the per-user limit (JJ_FAIR_SHARE, JJ_USER_LIMIT) ---------------------

#: Seconds a worker trusts its count of running jobs per user when only fair share is on.
#: With ``JJ_USER_LIMIT`` it counts afresh before every claim: a cap needs the latest figure.
COUNT_TTL = 1.0


def running_per_user(claimed: Path, worker_home: Path) -> dict[int, int]:
    """Jobs running now per user id, from the links in ``claimed/`` (no daemon, no index).

    The owner of a running job is the owner of its file, held in the
    worker's ``job/`` (a rename keeps it): a listing, then a ``readlink`` and
    an ``lstat`` per busy worker.  A link that points outside the workers'
    home, or whose job is gone or unreadable, counts for no one.  A job just
    claimed whose link is not made yet is not counted: that is why the cap is
    soft.
    """
    counts: dict[int, int] = {}
    home = os.path.join(os.path.normpath(worker_home), "")
    try:
        with os.scandir(claimed) as entries:
            links = [entry.path for entry in entries]
    except OSError:
        return counts
    for link in links:
        try:
            target = os.path.normpath(os.path.join(claimed, os.readlink(link)))
            if not target.startswith(home):
                continue
            uid = os.lstat(target).st_uid
        except OSError:
            continue
        counts[uid] = counts.get(uid, 0) + 1
    return counts


class Running:
    """One worker's count of running jobs per user, shared by its views, re-read after ``ttl``."""

    def __init__(self, claimed: Path, worker_home: Path, ttl: float) -> None:
        self.claimed, self.worker_home, self.ttl = claimed, worker_home, ttl
        self.counts: dict[int, int] = {}
        self.read_at = float("-inf")

    def now(self) -> dict[int, int]:
        """Jobs running per user id, at most ``ttl`` seconds old."""
        now = time.monotonic()
        if now - self.read_at >= self.ttl:
            self.counts = running_per_user(self.claimed, self.worker_home)
            self.read_at = now
        return self.counts


class FairQueueView(QueueView):
    """A queue view that also orders by user: ``JJ_FAIR_SHARE``, ``JJ_USER_LIMIT``.

    Besides the view's heap (kept as ``QueueView`` keeps it, so listing and
    refreshing are the same), each job's entry goes into a heap of its
    owner's (the ``st_uid`` of the ``lstat`` the view already does).  The next
    job is the head of one user's heap: the highest priority first, as
    always; among equal priorities (fair share) the user with the fewest
    jobs running in the jar, then the user this worker served least
    recently (so that with one worker two users take turns), then age.  A
    user at ``limit`` running jobs is skipped altogether.  A claim costs one
    comparison per user with jobs in the queue, plus the count of running
    jobs (``Running``).
    """

    def __init__(self, path: Path, rescan: float = 1.0, skip_dirs: bool = False, *,
                 running: Running, fair: bool = True, limit: int = 0) -> None:
        super().__init__(path, rescan, skip_dirs)
        self.running, self.fair, self.limit = running, fair, limit
        self.users: dict[int, list[tuple[int, int, str]]] = {}
        self.served: dict[int, int] = {}  # user id -> the turn this view last took its job
        self.turn = 0
        self.chosen: int | None = None  # the user whose job ``_next`` returned

    def _push(self, name: str, entry: os.DirEntry | None = None) -> None:
        info = self._stat(name, entry)
        if info is None:
            return
        self.known.add(name)
        key = (-priority_of(name), info.st_mtime_ns, name)
        heapq.heappush(self.heap, key)
        heapq.heappush(self.users.setdefault(info.st_uid, []), key)

    def _prune(self) -> None:
        super()._prune()
        for uid, mine in list(self.users.items()):
            self.users[uid] = [k for k in mine if k[2] in self.known]
            heapq.heapify(self.users[uid])
            if not self.users[uid]:
                del self.users[uid]

    def _clean(self) -> None:
        """Pop the heap's head while it is a job already tried (taken from a user's heap)."""
        while self.heap and self.heap[0][2] not in self.known:
            heapq.heappop(self.heap)

    def _next(self) -> str | None:
        self._clean()
        if not self.heap:  # all taken through the users' heaps: look again, as claim would
            self.refresh(force=True)
            self._clean()
        counts = self.running.now()
        best: tuple | None = None
        for uid in list(self.users):
            mine = self.users[uid]
            while mine and mine[0][2] not in self.known:
                heapq.heappop(mine)
            if not mine:
                del self.users[uid]
                continue
            running = counts.get(uid, 0)
            if self.limit and running >= self.limit:
                continue
            priority, mtime, name = mine[0]
            rank = ((priority, running, self.served.get(uid, -1), mtime, name) if self.fair
                    else (priority, 0, 0, mtime, name))
            if best is None or rank < best[0]:
                best = (rank, uid)
        if best is None:
            return None
        self.chosen = best[1]
        return best[0][4]

    def _drop(self, name: str) -> None:
        mine = self.users.get(self.chosen)
        if mine and mine[0][2] == name:
            heapq.heappop(mine)
        self.known.discard(name)
        self._clean()

    def claim(self, dest_dir: Path, accept: Callable[[Path], bool] | None = None) -> Path | None:
        """As ``QueueView.claim``; the user whose job was taken has had a turn."""
        dest = super().claim(dest_dir, accept)
        if dest is not None and self.chosen is not None:
            self.served[self.chosen] = self.turn
            self.turn += 1
        return dest


def view_maker(claimed: Path, worker_home: Path, fair: bool, limit: int):
    """What a worker makes its views with: ``QueueView``, or ``FairQueueView`` when asked.

    With neither fair share nor a limit, the plain view: the default path is
    exactly what it was.  Otherwise all the worker's views share one count.
    """
    if not fair and not limit:
        return QueueView
    running = Running(claimed, worker_home, 0.0 if limit else COUNT_TTL)

    def make(path: Path, skip_dirs: bool = False) -> QueueView:
        return FairQueueView(path, skip_dirs=skip_dirs, running=running, fair=fair, limit=limit)

    return make
