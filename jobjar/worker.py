"""The worker: a long-lived process that claims and runs jobs, one at a time.

The loop is the user guide's pseudocode::

    do forever:
        if stopped: exit                     (STOP here, or STOP_ALL)
        if paused: sleep; continue           (PAUSE here, or PAUSE_ALL)
        job = next job to claim              (node category, categories, uncategorized)
        if none: release waiting jobs; sleep; continue
        rename the job into our directory    (a failed rename: someone else won)
        link it from claimed/, make a scratch directory, run it
        write its record, move it to completed/, remove the link and the scratch

Each step is one filesystem operation, and ``docs/protocol.md`` lists what a
crash after each one leaves behind; ``faults.hit`` marks those points for the
crash tests.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from . import (
    control,
    depend,
    direct,
    execute,
    faults,
    files,
    live,
    liveness,
    machine,
    pilot,
    placement,
    records,
    states,
)
from . import directives as jjdir
from .access import may_submit
from .claim import BLOCKED, QueueView, view_maker
from .config import Config, load
from .errors import JobJarError
from .hold import Holds
from .layout import (
    CONTROL_FILES,
    SPARE_SCRATCH,
    WORKER_CONTROLS,
    WORKER_EXITED,
    WORKER_HEARTBEAT,
    WORKER_INFO,
    WORKER_LOG,
    WORKER_SCRATCH,
    Jar,
    checkout,
    held_job,
    held_path,
    relative_target,
    subdirs,
)
from .naming import printable, priority_of
from .notify import Watcher

#: Longest sleep between checks of a cancel request or control file while idle.
MAX_JITTER = 10.0
#: Shortest idle sleep, whatever JJ_PAUSE_TIME says.
MIN_SLEEP = 0.05
#: Longest job name that still leaves room for ``results/NAME.yaml`` in 255 bytes.
MAX_NAME_BYTES = 250
#: Seconds after which a node file is rewritten even if its figures did not move:
#: half the age at which readers take it for stale.
NODE_REFRESH = machine.STALE_AFTER / 2
#: Seconds ``waiting/`` must have been unchanged when listed empty for its unchanged
#: modification time to be trusted (NFS's default ``acdirmax``), and seconds after which
#: it is listed again anyway (``Worker.waiting_is_empty``).
WAITING_SETTLE = 60.0
WAITING_RELIST = 300.0


def job_search_path() -> dict[str, str]:
    """Environment additions so that jobs find ``submit_job`` and ``import jobjar``."""
    top = checkout()
    env = dict(os.environ)
    paths = []
    if top is not None:  # running from a checkout
        paths.append(str(top / "bin"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(top), env.get("PYTHONPATH")]))
    paths.append(os.path.dirname(sys.executable))
    env["PATH"] = os.pathsep.join(paths + [env.get("PATH", "/usr/bin:/bin")])
    return env


class Result(NamedTuple):
    """How one attempt ended: its status, why, and (if it ran) what ``execute`` saw."""

    status: str
    reason: str | None = None
    outcome: execute.Outcome | None = None


class Attempt:
    """The job in hand and how far it got: what the error path needs to know.

    Once ``proc`` is set the job's process has started, so an error of the
    worker's own can no longer hand the job back (it may be running, or may
    have run to the end): the job is finished instead.
    """

    def __init__(self, category: str | None, path: Path, record: dict) -> None:
        self.category = category
        self.path = path
        self.record = record
        self.scratch: Path | None = None
        self.fresh: list[tuple[str, str, str]] = []  # (record key, this job's file, final name)
        self.proc: execute.Process | None = None
        self.started: float | None = None
        self.result: Result | None = None  # set once its process was reaped
        self.recorded = False  # ``records.finish_attempt`` applied
        self.retry = False
        self.argv: list[str] | None = None  # the program to start without a shell (``direct``)


class Worker:
    """One worker process and its directory ``$JJ_WORKER_HOME/<node>.<pid>``."""

    def __init__(self, config: Config | None = None, categories: list[str] | None = None,
                 limits: pilot.Limits | None = None) -> None:
        self.config = config or load()
        self.pilot = pilot.Pilot(limits or pilot.Limits())  # when it ends by itself
        self.jar = Jar.from_config(self.config)
        self.name = f"{self.config.node}.{os.getpid()}"
        self.dir = self.jar.worker_dir(self.name)
        wanted = [self.config.node, *(categories or self.config.categories)]
        self.categories = list(dict.fromkeys(wanted))
        view = view_maker(self.jar.claimed, self.jar.worker_home,  # JJ_FAIR_SHARE, JJ_USER_LIMIT
                          self.config.fair_share, self.config.user_limit)
        self.views: list[tuple[str | None, QueueView]] = [
            (c, view(self.jar.queue_dir(c))) for c in self.categories]
        self.views.append((None, view(self.jar.unclaimed, skip_dirs=True)))
        # where a claimed job of each category sits: job/[CATEGORY/] (layout.held_path)
        self.job_dirs = {c: held_path(self.dir, c, "x").parent for c, _ in self.views}
        self.reported: dict[str, str | None] = {}  # the last problem logged, per directory
        self.watcher = Watcher()
        self.next_beat = 0.0
        self.dir_fd: int | None = None  # our directory, opened once (``open_directories``)
        self.home_fd: int | None = None  # $JJ_WORKER_HOME, likewise
        self.log_file = None
        self.base_env = job_search_path()
        self.controls = control.WorkerControls(self.jar, self.dir)
        self.holds = Holds(self.jar, self.categories, log=self.log)  # hold_category
        # paths used for every job, worked out once
        self.link = os.fspath(self.jar.claimed_link(self.name))
        self.scratch_root = self.dir / WORKER_SCRATCH
        # claimed/W -> ../workers/W/job/...: relative (nodes mount the jar at
        # different paths), and its fixed part worked out once, not per job.
        self.link_prefix = relative_target(self.dir, self.jar.claimed) + os.sep
        self.terminated = False  # SIGTERM/SIGINT: stop like STOP, after the current job
        self.sleeping = False
        self.current: Attempt | None = None
        # Reuse of the last job's empty output files and scratch directory, only
        # when nothing of that job still runs (``execute.survivors``): a detached
        # worker is a child subreaper, so every process of its jobs is its child.
        self.reaper = False  # set by main_loop: this process is the worker's alone
        self.clean = False  # the last job left no process behind
        self.spare_files: dict[str, str] = {}  # record key -> the last job's empty file
        self.kept_scratch: str | None = None  # the last job's empty scratch/T, kept in place
        self.gone: str | None = None  # why the worker cannot go on (its directory vanished)
        self.next_dir_check = 0.0
        # waiting/ as last listed (``waiting_is_empty``): the mtime at which it was empty
        # (and settled), or at which it had entries
        self.waiting_empty: int | None = None
        self.waiting_busy: int | None = None
        self.waiting_relist = float("-inf")
        self.figures: machine.Machine | None = None  # this node, measured (``node_figures``)
        self.measured_at = float("-inf")
        self.published: machine.Machine | None = None  # what nodes/NODE.yaml last got from us
        self.published_at = float("-inf")
        self.prefetched: tuple[Path, jjdir.Directives, bytes] | None = None  # read at the claim
        self.left: dict[str, str] = {}  # jobs given back (placement): name -> why, logged once
        self.too_big: dict[str, None] = {}  # [CAT/]NAME found too big for this node, newest last

    # -- set-up and shut-down ------------------------------------------------

    def setup(self) -> None:
        """Create the worker directory and describe ourselves in it."""
        if os.geteuid() == 0 and not self.config.allow_root:
            raise JobJarError("refusing to run jobs as root; set JJ_ALLOW_ROOT=yes to allow it")
        self.jar.ensure()
        execute.seal_descriptors()
        moved_aside = self.take_directory()
        for spare in self.jar.hidden_outputs(self.name):  # an older version's, of a namesake
            files.unlink(spare)
        files.remove_tree(self.dir / SPARE_SCRATCH)  # an older version's spare
        files.remove_tree(self.scratch_root)  # what a namesake's jobs left
        self.reaper = self.clean = self.reaper and execute.become_subreaper()
        self.open_directories()
        for job_dir in self.job_dirs.values():
            files.make_dir(job_dir)
        # Never through a link, never blocked by a fifo someone put there; hand-made
        # job names may hold bytes that are not UTF-8: escape, never crash.
        fd = os.open(self.dir / WORKER_LOG, files.APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
        self.log_file = open(fd, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
        info = {"worker": self.name, "node": self.config.node, "pid": os.getpid(),
                **liveness.identity(os.getpid()),
                "started": records.utc_iso(time.time()),
                "categories": self.categories, "python": sys.executable,
                "host": os.uname().nodename, "user": records.owner_name(os.geteuid()),
                "heartbeat": self.config.heartbeat}
        records.write(self.dir / WORKER_INFO, info)
        self.beat(force=True)
        self.warn_if_open_to_all()
        self.log(f"start categories={','.join(self.categories)}"
                 + (f" pilot: {self.pilot.limits.describe()}" if self.pilot.limits else ""))
        if moved_aside:
            self.log(f"moved aside what was at {self.name} (not this worker's own directory): "
                     f"{moved_aside}")
        for directory in (self.jar.worker_home, self.dir, self.jar.unclaimed, self.jar.cancel):
            self.watcher.add(directory)

    def open_directories(self) -> None:
        """Open our directory and ``$JJ_WORKER_HOME`` once, for the idle loop's lookups.

        The heartbeat, the control files and ``held/`` are then looked up by
        one name in an open directory: one request to the file server each,
        not one per component of the path (``docs/nfs.md``).  Our own
        directory is never a link put at its name (``O_NOFOLLOW``); the
        worker home is whatever the configuration names, as by its path.
        """
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        for attribute, path, extra in (("dir_fd", self.dir, getattr(os, "O_NOFOLLOW", 0)),
                                       ("home_fd", self.jar.worker_home, 0)):
            try:
                setattr(self, attribute, os.open(path, flags | extra))
            except OSError:
                setattr(self, attribute, None)
        self.controls.use_descriptors(self.dir_fd, self.home_fd)
        self.holds.home_fd = self.home_fd

    def close_directories(self) -> None:
        """Close what ``open_directories`` opened."""
        self.controls.use_descriptors(None, None)
        self.holds.home_fd = None
        for fd in (self.dir_fd, self.home_fd):
            if fd is not None:
                os.close(fd)
        self.dir_fd = self.home_fd = None

    def take_directory(self) -> str | None:
        """Make ``workers/NODE.PID`` ours; the name it moved aside, if any.

        A directory already at our name is used only if it is a real
        directory of our own user (a dead namesake's: what it held is
        recovered first).  Anything else (a link, a file, another user's
        directory, dead worker's or planted) is never written into: a
        directory is recovered by recovery's rules, then renamed to
        ``.planted.NODE.PID.TOKEN`` beside it, and a fresh directory is
        made.  If that cannot be done (a sticky ``workers/``), or a job that
        could not be recovered is still held there (its process may run),
        the worker refuses to start.
        """
        moved = None
        for _ in range(3):
            try:
                info = os.lstat(self.dir)
            except FileNotFoundError:
                if self._make_own_dir():
                    return moved
                continue
            if stat.S_ISDIR(info.st_mode):  # our pid was a dead worker's: repair first
                from .recovery import recover_worker

                recover_worker(self.jar, self.config, self.name,
                               "its pid was reused on this node", local=True)
                if held_job(self.dir) is not None:  # its process may still run
                    raise JobJarError(f"{self.dir} still holds a job that could not be "
                                      "recovered: not starting (see recover_jobs)")
                if info.st_uid == os.geteuid():
                    for old in (*WORKER_CONTROLS, WORKER_EXITED):
                        files.unlink(self.dir / old)
                    return moved
            moved = self._move_aside() or moved
        raise JobJarError(f"{self.dir} keeps reappearing: not starting")

    def _make_own_dir(self) -> bool:
        """Create our directory, with the mode bits of ``workers/``; False if it exists."""
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError:
            return False
        try:
            mode = stat.S_IMODE(os.lstat(self.jar.worker_home).st_mode)
            os.chmod(self.dir, (mode & (0o777 | stat.S_ISGID)) | 0o700)
        except OSError:
            pass
        return True

    def _move_aside(self) -> str | None:
        """Rename what is at our name to a dot-name nobody reads; refuse to start if we cannot."""
        aside = f".planted.{self.name}.{files.token()}"
        try:
            os.rename(self.dir, self.jar.worker_home / aside)
        except FileNotFoundError:
            return None  # gone meanwhile: the next look makes our own
        except OSError as exc:
            raise JobJarError(f"{self.dir} is not this worker's own directory and cannot be "
                              f"moved aside ({exc.strerror or exc}): not starting") from None
        return aside

    def warn_if_open_to_all(self) -> None:
        """Whoever can write a queue directory runs code as us (docs/security.md).

        ``waiting/`` too: its jobs are moved into the queue when their
        dependencies end.
        """
        watched = [self.jar.home, self.jar.waiting, *(view.path for _, view in self.views),
                   *(self.jar.waiting_dir(c) for c in self.categories)]
        for shared in dict.fromkeys(watched):
            try:
                open_to_all = os.stat(shared).st_mode & 0o002
            except OSError:
                continue
            if open_to_all:
                self.log(f"warning: {shared} is writable by everyone: anyone can run jobs "
                         "as this worker's user")

    def drop_spares(self) -> None:
        """Remove the last job's empty files and scratch directory kept for reuse."""
        for spare in self.spare_files.values():
            _discard(spare)
        self.spare_files.clear()
        if self.kept_scratch is not None:
            files.remove_tree(self.scratch_root / self.kept_scratch)
            self.kept_scratch = None

    def log(self, message: str) -> None:
        """Append a time-stamped line to the worker's log.

        Names and reasons come from other people's files: control characters
        are escaped, so a new line in a job name cannot forge a log line.
        """
        if self.log_file:
            try:
                self.log_file.write(f"{records.utc_iso(time.time())} {printable(message)}\n")
            except (OSError, ValueError):  # a full disk must not stop the worker
                pass

    def beat(self, force: bool = False) -> None:
        """Refresh the heartbeat file if it is due.  Never raises.

        A failure (EIO or ESTALE on NFS, a file someone else put in its
        place) is logged once and survived: it must not hand back the job
        that runs meanwhile.  A replaced file is replaced again, by ours.
        """
        now = time.monotonic()
        if not force and now < self.next_beat:
            return
        self.next_beat = now + max(0.05, self.config.heartbeat)
        path = self.dir / WORKER_HEARTBEAT
        try:
            # a link's own time, never its target's; by the name in our directory's
            # descriptor: one lookup for the file server, not one per component of the path
            if self.dir_fd is not None:
                os.utime(WORKER_HEARTBEAT, dir_fd=self.dir_fd, follow_symlinks=False)
            else:
                os.utime(path, follow_symlinks=False)
            problem = None
        except OSError as exc:
            problem = self._new_heartbeat(path)
            if problem is None and not isinstance(exc, FileNotFoundError):
                self.log(f"heartbeat: {exc.strerror or exc}; replaced by a new file")
        if problem != self.reported.get(WORKER_HEARTBEAT):
            self.reported[WORKER_HEARTBEAT] = problem
            self.log(f"heartbeat: {problem}" if problem else "heartbeat: working again")
        self.publish_node()

    def node_figures(self, max_age: float = 1.0) -> machine.Machine:
        """This node's load and memory, measured at most once per ``max_age`` seconds.

        The claim loop asks on every pass; the kernel's figures change
        slowly, and reading them twice a millisecond would cost throughput.
        """
        now = time.monotonic()
        if self.figures is None or now - self.measured_at >= max_age:
            figures = machine.measure(self.config.node)
            figures.max_load = self.config.max_load  # published, for job_info elsewhere
            figures.min_free_memory_kb = self.config.min_free_memory
            figures.too_big = tuple(self.too_big)
            self.figures, self.measured_at = figures, now
        return self.figures

    def publish_node(self) -> None:
        """Write ``nodes/NODE.yaml`` with the heartbeat, if due; a failure is logged once, survived.

        Every worker of a node writes the same file (an atomic rename each
        time): no election is needed, and a node keeps publishing while any
        of its workers lives.  Each write costs the file server a creation,
        a write and a rename, so a beat writes only when the figures moved
        (``_moved``) or the file is ``NODE_REFRESH`` seconds old: an idle
        node writes once a minute, not at every heartbeat, and its file is
        never older than half ``machine.STALE_AFTER``.
        """
        figures = self.node_figures()
        now = time.monotonic()
        if self.published is not None and now - self.published_at < NODE_REFRESH \
                and not _moved(self.published, figures):
            return
        try:
            machine.publish(self.jar, figures)
            self.published, self.published_at = figures, now
            problem = None
        except OSError as exc:
            problem = f"cannot write {self.jar.node_file(self.config.node)}: " \
                      f"{exc.strerror or exc}"
        key = "nodes"
        if problem != self.reported.get(key):
            if problem or key in self.reported:
                self.log(problem or "node file: working again")
            self.reported[key] = problem

    def _new_heartbeat(self, path: Path) -> str | None:
        """Put a fresh heartbeat file of ours in place; the problem if we cannot."""
        try:
            if os.path.lexists(path) and not os.path.islink(path) and files.is_real_dir(path):
                files.remove_tree(path)
            files.write_new(path, b"")
            return None
        except FileNotFoundError:
            if not files.is_real_dir(self.dir):
                self.gone = f"its directory {self.dir} is gone"
            return "cannot write the heartbeat file: no such file or directory"
        except OSError as exc:
            return f"cannot write the heartbeat file: {exc.strerror or exc}"

    # -- the loop ------------------------------------------------------------

    def run(self, ready: Callable[[str], None] | None = None) -> None:
        """Claim and run jobs until told to stop (``ready(name)`` once set up).

        A worker whose own directory vanished (the jar was deleted) stops
        with one line in its log and a ``JobJarError``, not a traceback.
        """
        self.setup()
        self.pilot = pilot.Pilot(self.pilot.limits)  # its time counts from here
        if ready:
            ready(self.name)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._terminate)
        clean = False
        try:
            self.loop()
            clean = True
        except _Interrupted:
            self.log("stop (signal)")
            clean = True
        except Exception as exc:
            # A detached worker's standard error goes nowhere: its log must say why it
            # died.  No "exited" file: recovery must treat it as the crash it is.
            import traceback

            self.log(f"fatal: {type(exc).__name__}: {exc}")
            for line in traceback.format_exc().splitlines():
                self.log(f"  {line}")
            raise
        finally:
            if clean and not self.gone:
                self.drop_spares()
                try:  # scratch/ stays between jobs; a stopped worker leaves none
                    os.rmdir(self.scratch_root)
                except OSError:
                    pass
                try:
                    files.write_new(self.dir / WORKER_EXITED, b"")
                except OSError:
                    pass
            self.watcher.close()
            self.close_directories()
        if self.gone:
            raise JobJarError(f"worker {self.name} stopped: {self.gone}")

    def loop(self) -> None:
        """The guide's loop, until a stop request, a signal or a vanished worker directory."""
        while True:
            self.beat()
            if self.gone:
                self.log(f"stop: {self.gone}")
                return
            if self.terminated or self.controls.stopped():
                self.log("stop" + (" (signal)" if self.terminated else ""))
                return
            done = self.pilot.done()  # a pilot's time runs out even while it is paused
            if done:
                self.log(f"stop: {done}")
                return
            if self.controls.paused():
                self.sleep()
                continue
            claimed = self.claim()
            if claimed is None:
                released = self.release_waiting()
                if released or not self.nothing_to_come():
                    self.sleep()
                    continue
                # No hope in waiting/: one more look, for a job another worker released
                # between our claim and that look (it left waiting/ for our queue).
                claimed = self.claim()
                if claimed is None:
                    self.log("stop: exit-when-empty: nothing to claim and no waiting job of "
                             "its categories can become claimable")
                    return
            if self.handle_safely(*claimed) != states.WAITING:
                self.pilot.jobs += 1
            self.release_waiting()

    def nothing_to_come(self) -> bool:
        """``--exit-when-empty``: nothing to claim now, and no waiting job of ours can start."""
        if not self.pilot.limits.exit_when_empty:
            return False
        mine = [c for c, _ in self.views]
        return pilot.waiting_hope(self.jar, mine, self.log, self.pilot.ready_seen) is None

    def release_waiting(self) -> int:
        """Release waiting jobs whose dependencies ended (how many); nothing there may stop us."""
        if self.waiting_is_empty():
            return 0
        self.check_waiting_dirs()
        try:
            return depend.release(self.jar, log=self.log)
        except Exception as exc:  # one bad entry is depend's to set aside; this is a backstop
            self.log(f"error while releasing waiting jobs: {type(exc).__name__}: {exc}")
            return 0

    def waiting_is_empty(self) -> bool:
        """Is ``waiting/`` known to hold nothing?  Then there is nothing to release.

        Most jars have no waiting job, and listing ``waiting/`` after every
        job and at every idle pass costs the file server an open, reads and
        a close each time.  So an empty ``waiting/`` is trusted, for one
        ``lstat`` a time, while its modification time stays the same, but
        only if it had already been unchanged for ``WAITING_SETTLE`` seconds
        when it was listed empty: timestamps may have whole seconds (a job
        renamed in during the same second leaves the time as it was), and
        an NFS client caches a directory's listing and its attributes
        separately, for up to ``acdirmax`` (60 s by default), so a listing
        made that long after the last change is known to include it.  And
        it is listed again every ``WAITING_RELIST`` seconds whatever it
        says.  A ``waiting/`` with anything in it (a job, a category) is
        left to ``depend.release`` to list, as before.
        """
        try:
            info = os.lstat(self.jar.waiting)
        except OSError:
            return False
        mtime, now = info.st_mtime_ns, time.monotonic()
        if not stat.S_ISDIR(info.st_mode) or mtime == self.waiting_busy:
            return False  # not ours to judge, or had entries at this very time: list it
        if mtime == self.waiting_empty and now < self.waiting_relist:
            return True
        try:
            with os.scandir(self.jar.waiting) as entries:
                empty = not any(not entry.name.startswith(".") for entry in entries)
        except OSError:
            return False
        self.waiting_busy = None if empty else mtime
        settled = empty and time.time() - info.st_mtime >= WAITING_SETTLE
        self.waiting_empty = mtime if settled else None
        self.waiting_relist = now + WAITING_RELIST
        return empty

    def _terminate(self, signum: int, frame: object) -> None:
        """A termination signal stops the worker, but never in the middle of a job."""
        self.terminated = True
        if self.sleeping:
            raise _Interrupted()

    def claim(self) -> tuple[str | None, Path] | None:
        """Rename the next job into our ``job/`` directory, or return ``None``.

        A queue directory we cannot use (another user's, without our
        rights) is skipped with one line in the log, never a crash.
        """
        events = self.watcher.drain() if self.watcher.active else None
        if events:  # local submissions made while we were busy: no re-listing needed
            self._route(events)
        if self.node_held():
            return None
        held = self.holds.current()
        accept = self.pilot.fits if self.pilot.deadline is not None else None
        for category, view in self.views:
            if held and category in held:
                continue
            while True:
                path = view.claim(self.job_dirs[category], accept)
                self.report(str(view.path), view.problem)
                if path is None:
                    break
                if self.place(category, view, path):
                    return category, path
        return None

    def node_held(self) -> bool:
        """Placement rule 1: the node is too loaded or short of memory to claim anything.

        Off (no measurement at all) unless ``JJ_MAX_LOAD`` or
        ``JJ_MIN_FREE_MEMORY`` is set; the figures are read at most once a
        second.  A change of verdict is logged once, not every pass.
        """
        config = self.config
        if config.max_load is None and config.min_free_memory is None:
            return False
        why = placement.node_gate(self.node_figures(), config.max_load, config.min_free_memory)
        rule = why.split(" ", 1)[0] if why else None
        if rule != self.reported.get("gate"):
            if why or "gate" in self.reported:
                self.log(f"claiming nothing: {why}" if why else "claiming again")
            self.reported["gate"] = rule
        return why is not None

    def place(self, category: str | None, view: QueueView, path: Path) -> bool:
        """Placement rule 2 for a job just claimed: True to run it here.

        Its directives are read now (and kept for ``read_directives``).  A
        job for another node, or asking for more memory or CPUs than this
        node has free, is given back by one rename to where it came from,
        before anything of it is written, and left alone for a while
        (``QueueView.defer``).  A job whose head cannot be read or parsed
        goes on, to be rejected or failed with the reason as before.
        """
        self.prefetched = None
        try:
            head = depend.read_head(path)
            opts = jjdir.parse(head)
        except Exception:  # someone's file: its problem is reported by run_job
            return True
        self.prefetched = (path, opts, head)
        if not placement.asks_anything(opts):
            return True
        found = placement.refusal(opts, self.config.node, self.node_figures(), jar=self.jar,
                                  worker=self.name)
        if found is None:
            return True
        kind, reason = found
        try:
            os.rename(path, view.path / path.name)
        except OSError as exc:  # cannot happen short of a broken disk: run it, never lose it
            self.log(f"cannot give back {path.name} ({reason}): {exc.strerror or exc}; "
                     "running it here")
            return True
        self.prefetched = None
        view.defer(path.name, placement.defer_for(kind))
        if kind == placement.TOO_BIG:  # published with the node's figures (system_status)
            self.too_big.pop(_queued_as(category, path.name), None)
            self.too_big[_queued_as(category, path.name)] = None
            while len(self.too_big) > machine.MAX_TOO_BIG:
                del self.too_big[next(iter(self.too_big))]
        if self.left.get(path.name) != kind:
            if len(self.left) > 10000:
                self.left.clear()
            self.left[path.name] = kind
            self.log(f"leave {path.name}: {reason}")
        return False

    def report(self, directory: str, problem: str | None) -> None:
        """Log a directory's problem once (not once per claim), and once when it is gone."""
        if problem != self.reported.get(directory):
            if problem or directory in self.reported:
                self.log(problem or f"{directory} is usable again")
            self.reported[directory] = problem

    def check_waiting_dirs(self) -> None:
        """Say, once, which category of ``waiting/`` we cannot list (every ``BLOCKED`` s).

        Such a directory is skipped by the walker (another group's, in the
        split set-up): its jobs are released by workers that can read it.
        """
        now = time.monotonic()
        if now < self.next_dir_check:
            return
        self.next_dir_check = now + BLOCKED
        for category in subdirs(self.jar.waiting):
            where = self.jar.waiting_dir(category)
            usable = os.access(where, os.R_OK | os.X_OK)
            self.report(str(where), None if usable else f"cannot list {where}: permission "
                        "denied; its jobs are left to workers that can")

    def sleep(self) -> None:
        """Sleep ``JJ_PAUSE_TIME`` +-10 % (at most 10 s off), waking on local events."""
        base = self.config.pause_time
        jitter = min(base * 0.1, MAX_JITTER)
        # At least MIN_SLEEP, so that JJ_PAUSE_TIME=0 polls instead of spinning.
        deadline = time.monotonic() + max(MIN_SLEEP, base + random.uniform(-jitter, jitter))
        if self.pilot.deadline is not None:  # a pilot wakes when its time is up
            deadline = min(deadline, max(self.pilot.deadline, time.monotonic() + MIN_SLEEP))
        for _, view in self.views:  # categories created since we last looked
            self.watcher.add(view.path)
        self.sleeping = True
        try:
            while not self.terminated and not self.gone:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(left, max(0.05, self.next_beat - time.monotonic()))
                events = self.watcher.wait(wait)
                self.beat()
                if self.reaper:  # reap what our jobs left behind and has ended since
                    execute.survivors()
                if events and self._route(events):
                    return
        finally:
            self.sleeping = False

    def _route(self, events: list[tuple[str, str]]) -> bool:
        """Feed new file names to the queue views; True if worth waking up for."""
        wake = False
        for directory, name in events:
            for _, view in self.views:
                if str(view.path) == directory:
                    view.add(name)
                    wake = True
            if directory in (str(self.jar.worker_home), str(self.dir)) and \
                    name in CONTROL_FILES:
                wake = True
            if directory == str(self.jar.unclaimed) and name in self.categories:
                self.watcher.add(self.jar.unclaimed / name)
                wake = True
        return wake

    # -- one job -------------------------------------------------------------

    def handle_safely(self, category: str | None, path: Path) -> str | None:
        """Handle a job (its status); if the worker itself fails, never let the job run twice.

        Before the job's process started, an error gives the job back (it
        never ran), counted as a recovery so that the poison limit applies.
        After, the job is finished: whatever still runs of it is ended, and
        its record says what went wrong (``docs/protocol.md``).
        """
        try:
            return self.handle(category, path)
        except _Interrupted:
            raise
        except Exception as exc:  # OSError mostly; anything else must not kill us either
            current, self.current = self.current, None
            self.log(f"error while handling {path.name}: {type(exc).__name__}: {exc}")
            if current is not None and current.proc is not None:
                self._attempt(self.settle, current, exc)
            else:
                self._attempt(self.give_back, path, exc)
            if held_job(self.dir) is not None:  # still ours: stop, and leave it to recover_jobs
                self.log("exiting: a job is stuck in this worker's directory")
                self.terminated = True
            time.sleep(min(self.config.pause_time, 1.0))
            return None

    def give_back(self, path: Path, exc: Exception) -> None:
        """Put back a job whose process never started."""
        from .recovery import recover_worker

        try:
            recover_worker(self.jar, self.config, self.name, f"worker error: {exc}")
        except OSError as again:
            self.log(f"could not give {path.name} back: {again}")

    def settle(self, current: Attempt, exc: Exception) -> None:
        """Finish a started job after an error of the worker's own.

        It may still run, or may have run to the end: handing it back would
        run it twice.  What still runs is ended; the record keeps the status
        its exit gave and notes the error; every step is tried on its own.
        """
        self.clean = False  # after an error of ours, nothing of the last job is reused
        if current.result is None:  # not reaped yet: end it first
            execute.stop(current.proc, self.config.kill_grace)
            current.result = Result(*self.outcome_of(current, None, time.time()))
        problems = self._attempt(self.keep_outputs, current) or []
        result = current.result
        reason = _joined(result.reason, *problems, f"worker error: {exc}")
        if current.recorded:
            current.record.update(status=result.status, reason=reason)
        else:
            self.close_attempt(current, result._replace(reason=reason), retry=False)
        current.retry = False
        self.finish(current, tolerant=True)

    def _attempt(self, step: Callable[..., object], *args: object) -> object:
        """Run one step of the error path; log its failure and go on (``None``)."""
        try:
            return step(*args)
        except Exception as exc:
            self.log(f"error while finishing: {type(exc).__name__}: {exc}")
            return None

    def handle(self, category: str | None, path: Path) -> str:
        """Run one claimed job through to ``completed/`` (or back to the jar); its status."""
        claimed_at = time.time()
        faults.hit("after-claim")
        self.link_claim(f"{self.link_prefix}{held_path(Path(), category, path.name)}")
        faults.hit("after-link")
        self.log(f"claim {path.name}")
        current = self.current = Attempt(category, path,
                                         self.new_record(category, path, claimed_at))
        result = self.run_job(current)
        retry = result.status in states.RETRYABLE and \
            current.record["attempt"] <= current.record["retries"]
        cut_short = self.cut_short(current, result)
        if cut_short:
            result, retry = result._replace(reason=_joined(result.reason, cut_short)), True
        self.close_attempt(current, result, retry)
        if cut_short:
            records.interrupted(current.record)
        faults.hit("after-exit")
        self.finish(current)
        self.current = None
        return result.status

    def cut_short(self, current: Attempt, result: Result) -> str | None:
        """Why a failed job goes back to the queue instead: its worker was told to stop.

        A scheduler ending a pilot's allocation (Slurm's ``scancel``, the end
        of its time limit) signals every process of it at once, the job's
        with the worker's: the job dies of the signal while the worker, which
        never stops in the middle of a job, would record a failure.  A job
        that failed after the worker's own SIGTERM or SIGINT is requeued as
        if recovered (``records.interrupted``), never lost; one that
        succeeded stays succeeded.
        """
        if not self.terminated or current.proc is None or result.status != states.FAILED:
            return None
        return "requeued: its worker was told to stop (SIGTERM or SIGINT) while it ran"

    def link_claim(self, target: str) -> None:
        """``claimed/W -> target``, replacing what an earlier crash (or anyone) left there.

        A directory someone made at ``claimed/W`` is removed if it can be;
        if not, the job runs without its link (logged once): ``system_status``
        then does not show it, but nothing is lost, and no job bounces.
        """
        problem = None
        for _ in range(2):
            try:
                os.symlink(target, self.link)
                problem = None
                break
            except FileExistsError:
                problem = f"cannot make the link {self.link}: something is in its place"
                files.remove_tree(self.link)  # lstat first: a link or file is only unlinked
            except OSError as exc:
                problem = f"cannot make the link {self.link}: {exc.strerror or exc}"
                break
        self.report(self.link, problem)

    def new_record(self, category: str | None, path: Path, claimed_at: float) -> dict:
        """The record of this attempt, carrying earlier attempts' history."""
        name = path.name
        where = self.jar.record(name)
        prior = records.read(where) or {}
        if prior.get("worker") == self.name:
            # Our own earlier attempt (a retry, or a finished job's name used again).
            # Recovery reads "our record + our job/" as "only the move was lost", so
            # un-name us first: if we die running this attempt, it is a lost attempt.
            records.write(where, dict(prior, worker=None))
        out, err = self.jar.default_output(name)
        return records.attempt(name, category, priority_of(name), path, self.name,
                               self.config.node, claimed_at, records.continued(prior),
                               str(out), str(err))

    def close_attempt(self, current: Attempt, result: Result, retry: bool) -> None:
        """Fill in the record from the attempt's result (``records.finish_attempt``)."""
        outcome = result.outcome
        records.finish_attempt(
            current.record, result.status, result.reason,
            outcome.started if outcome else None, outcome.finished if outcome else time.time(),
            outcome.exit_code if outcome else None, outcome.signal if outcome else None, retry,
            outcome.usage if outcome else None)
        current.recorded, current.retry = True, retry

    # -- the steps of one attempt ----------------------------------------------

    def run_job(self, current: Attempt) -> Result:
        """Check the job, read its directives and dependencies, then run it."""
        refused = self.check_job(current.category, current.path)
        if refused:
            return refused
        opts = self.read_directives(current.path, current.record, current)
        if isinstance(opts, Result):
            return opts
        current.record["retries"] = opts.retries
        current.record["batch"] = opts.batch
        blocked = self.check_dependencies(current.path.name, opts)
        if blocked:
            return blocked
        streams = self.choose_outputs(current, opts)
        current.scratch = self.make_scratch()
        faults.hit("after-scratch")
        failed = self.start(current, opts, streams)
        return failed or self.supervise(current, opts)

    def check_job(self, category: str | None, path: Path) -> Result | None:
        """A cancel request, or a file that must not be run: the attempt ends here.

        A file of another user is run only if that user could have put it
        in the queue it was claimed from (``access``): however it got there
        (a race with recovery or release, a rename by someone with more
        rights), nobody runs code as us through a queue they may not write.
        """
        if os.path.lexists(self.jar.cancel_request(path.name)):
            return Result(states.CANCELLED, "cancelled before it started")
        try:
            info = os.lstat(path)
        except OSError as exc:
            return Result(states.REJECTED, f"cannot stat the job file: {exc.strerror}")
        problem = unusable(path, info) or may_submit(info, self.jar.queue_dir(category),
                                                     category)
        return Result(states.REJECTED, problem) if problem else None

    def read_directives(self, path: Path, record: dict | None = None,
                        current: Attempt | None = None) -> jjdir.Directives | Result:
        """The job's ``#JJ`` options; a bad one fails the job (never the worker).

        The same read gives the record its ``command`` (``records.command_line``)
        and ``current`` the program to start without a shell, if the whole
        file is of that form (``direct.argv_of``); a job read at the claim
        (``place``) is not read again.
        """
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is not None and prefetched[0] == path:
            _, opts, head = prefetched
        else:
            try:
                head = depend.read_head(path)
            except depend.NotAJob as exc:
                return Result(states.REJECTED, str(exc))
            except OSError as exc:
                return Result(states.REJECTED, f"cannot read the job file: {exc.strerror}")
            opts = None
        if record is not None:
            record["command"] = records.command_line(head)
        if current is not None and len(head) < jjdir.HEAD_BYTES:  # the whole file
            current.argv = direct.argv_of(head)
        if opts is not None:
            return opts
        try:
            return jjdir.parse(head)
        except Exception as exc:  # someone's file: any parse error is the file's fault
            return Result(states.FAILED, depend.directive_problem(exc))

    def check_dependencies(self, name: str, opts: jjdir.Directives) -> Result | None:
        """Dependencies not met: wait (``waiting/``) or fail; ``None``: go ahead.

        A job that names itself fails at once rather than waiting for ever.
        """
        if not opts.dependencies:
            return None
        verdict, reason = depend.state(self.jar, opts, name)
        if verdict == "failed":
            return Result(states.DEPENDENCY_FAILED, reason)
        if verdict == "wait":
            return Result(states.WAITING)
        return None

    def choose_outputs(self, current: Attempt,
                       opts: jjdir.Directives) -> tuple[execute.Stream, execute.Stream]:
        """Where the job's standard output and error go.

        A file the job names is opened by the job itself (a relative path is
        taken in ``output/``).  A first attempt's default output goes to a
        hidden file of this job alone, renamed to ``output/NAME.out``/``.err``
        afterwards if not empty: a new one (``O_EXCL``, an unpredictable
        name), or the empty one the last job left when nothing of that job
        still runs, so that nothing a previous job left running can write
        into it.  A retry appends to the job's own files.
        """
        record = current.record
        retry = record["attempt"] > 1
        streams = []
        for key, own, suffix in (("stdout", opts.output, "out"), ("stderr", opts.error, "err")):
            if own:
                record[key] = os.path.join(self.jar.output, own)
                streams.append(execute.Stream(record[key], False, retry))
            elif retry:
                streams.append(execute.Stream(record[key], True, True))
            else:
                spare = self.spare_files.pop(key, None)
                if spare and self.clean and _own_file(spare):
                    current.fresh.append((key, spare, record[key]))
                    streams.append(execute.Stream(spare, True, False, reuse=True))
                    continue
                if spare:  # not ours to reuse any more: gone, replaced, or not clean
                    _discard(spare)
                fresh = os.fspath(self.jar.hidden_output(self.name, files.token(), suffix))
                current.fresh.append((key, fresh, record[key]))
                streams.append(execute.Stream(fresh, True, False))
        return streams[0], streams[1]

    def make_scratch(self) -> Path:
        """An empty scratch directory of this job alone: ``scratch/T``, T random.

        A new name for every job whose predecessor left a process behind: a
        process an earlier job left cannot write into it, by its path or its
        working directory.  When nothing of the last job runs (``clean``),
        its scratch directory, emptied when it ended, is used again where it
        is (``_reuse_scratch``): one ``lstat`` instead of a ``mkdir`` (a new
        directory costs hundreds of microseconds on a busy disk, and a
        round trip to the file server).  ``scratch/`` stays between jobs; it
        is opened without following links, so whatever a job put in its
        place is removed, never followed, and the directory is made inside
        the real one.
        """
        root = self.scratch_root
        try:
            fd = os.open(root, _DIR_FLAGS)
        except OSError:  # missing (the first job), or a link or file a job left there
            self.kept_scratch = None
            files.remove_tree(root)
            os.mkdir(root)
            fd = os.open(root, _DIR_FLAGS)
        try:
            name = self._reuse_scratch(fd)
            if name is None:
                name = files.token()
                os.mkdir(name, dir_fd=fd)
        finally:
            os.close(fd)
        return root / name

    def _reuse_scratch(self, root_fd: int) -> str | None:
        """The last job's scratch directory, if it may serve again: its name, or ``None``.

        Only when nothing of the last job runs (``clean``), and only a real
        directory of ours: anyone of the group may have put something in
        ``workers/W/`` since (a link is removed, never followed).  It was
        found empty when its job ended (``remove_scratch``).
        """
        name, self.kept_scratch = self.kept_scratch, None
        if name is None:
            return None
        try:
            info = os.lstat(name, dir_fd=root_fd)
            if self.clean and stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
                return name
        except OSError:
            return None
        files.remove_tree(self.scratch_root / name)
        return None

    def start(self, current: Attempt, opts: jjdir.Directives,
              streams: tuple[execute.Stream, execute.Stream]) -> Result | None:
        """Start the job's process; a job that cannot start has failed."""
        env = self.job_env(current, opts)
        started = time.time()
        try:
            proc = execute.spawn(current.path, current.scratch, env, *streams,
                                 direct=current.argv)
        except (OSError, execute.subprocess.SubprocessError) as exc:
            for _, fresh, _ in current.fresh:
                files.unlink(fresh)
            current.fresh = []
            reason = getattr(exc, "strerror", None) or str(exc)
            return Result(states.FAILED, f"cannot start the job: {reason}")
        current.proc, current.started = proc, started
        # Its hidden output files, named in the line the log gets anyway: live output
        # costs no filesystem operation of its own (``live.start_message``).
        self.log(live.start_message(current.path.name, proc.pid, current.fresh))
        return None

    def supervise(self, current: Attempt, opts: jjdir.Directives) -> Result:
        """Wait for the job (timeout, cancel), then keep its output."""
        faults.hit("while-running")
        name = current.path.name
        why, finished = execute.supervise(
            current.proc, opts.timeout, self.config.kill_grace,
            lambda: cancel_requested(self.jar, name), self.beat)
        result = current.result = Result(*self.outcome_of(current, why, finished))
        self.clean = self.reaper and not execute.survivors()
        if why == states.TIMED_OUT:
            result = current.result = result._replace(
                reason=f"ran longer than its timeout of {opts.timeout:g} s")
        problems = self.keep_outputs(current)
        return result._replace(reason=_joined(result.reason, *problems))

    def outcome_of(self, current: Attempt, why: str | None,
                   finished: float) -> tuple[str, str | None, execute.Outcome]:
        """``(status, reason, outcome)`` of a reaped process."""
        outcome = execute.outcome(current.proc, current.started, finished, why)
        return outcome.status, outcome.reason, outcome

    def keep_outputs(self, current: Attempt) -> list[str]:
        """Give the job's output its name; the problems met (the job is run all the same)."""
        if not current.fresh:
            return []
        pairs, current.fresh = current.fresh, []
        kept = execute.keep_outputs([(fresh, final) for _, fresh, final in pairs],
                                    current.proc.pid, reuse_ok=self.clean)
        for (key, _, _), where in zip(pairs, kept):
            current.record[key] = where.path
            if where.spare:
                self.spare_files[key] = where.spare
        return [where.problem for where in kept if where.problem]

    def job_env(self, current: Attempt, opts: jjdir.Directives) -> dict:
        """The job's environment: ours plus the ``JJ_*`` variables."""
        record = current.record
        env = dict(self.base_env)
        env.update(JJ_HOME=str(self.jar.home), JJ_WORKER_HOME=str(self.jar.worker_home),
                   JJ_WORKER_DIR=str(self.dir), JJ_SCRATCH_DIR=str(current.scratch),
                   JJ_JOB_NAME=current.path.name, JJ_JOB_FILE=str(current.path),
                   JJ_NODE=self.config.node, JJ_CATEGORY=current.category or "",
                   JJ_PRIORITY=str(record["priority"]), JJ_ATTEMPT=str(record["attempt"]),
                   JJ_WORKER=self.name)
        env["JJ_PROJECT"] = ""  # JJ_HOME is the project's jar already: none on top, not a file's
        if self.config.python is not None:  # this node's interpreter for Python calls
            env["JJ_PYTHON"] = str(self.config.python)
        if opts.array_index is not None:
            env["JJ_ARRAY_INDEX"] = str(opts.array_index)
        else:
            env.pop("JJ_ARRAY_INDEX", None)
        return env

    # -- after the attempt -------------------------------------------------------

    def finish(self, current: Attempt, tolerant: bool = False) -> None:
        """Record the attempt, move the job on, and clean up after it.

        ``tolerant`` (the error path): every step is tried and logged on
        its own; a job whose process ran goes to ``completed/`` even if its
        record cannot be written, rather than run again.
        """
        name, record = current.path.name, current.record
        status = record["status"]
        if status == states.WAITING:
            target = self.jar.waiting_dir(current.category) / name
        else:
            self.write_record(name, record, tolerant or status == states.REJECTED)
            faults.hit("after-record")
            if current.retry:
                target = self.jar.queue_dir(current.category) / name
            else:
                target = self.jar.state_dir(states.final_state(status)) / name
        if tolerant:
            self._attempt(files.rename_into, current.path, target)
        else:
            files.rename_into(current.path, target)
        faults.hit("after-move")
        _discard(self.link)
        faults.hit("after-unlink")
        if current.scratch is not None:
            self.remove_scratch(current.scratch)
        if status != states.WAITING and not current.retry:  # a late request must not outlive it
            _discard(self.jar.cancel_request(name))
        self.log(f"finish {name} {status}")

    def write_record(self, name: str, record: dict, tolerant: bool) -> None:
        """Write the record; where ``tolerant``, a failure is logged and the job moves on."""
        try:
            records.write(self.jar.record(name), record)
        except OSError as exc:  # a name too long for results/, a full disk
            if not tolerant:
                raise
            self.log(f"no record for {name}: {exc.strerror or exc}; status {record['status']}, "
                     f"reason: {record['reason']}")

    def remove_scratch(self, scratch: Path) -> None:
        """Empty the job's scratch directory: kept where it is for the next job, or removed.

        Kept (``make_scratch``) when nothing of the job runs any more and
        it is an empty, real directory; else removed (``rmdir``, or
        ``remove_tree`` if the job left files).  ``remove_tree`` looks
        first: a link a job put in its place is only unlinked, and nothing
        behind it is touched.  ``scratch/`` itself stays for the next job
        (``make_scratch`` checks it then).
        """
        if self.clean:
            try:
                if not os.listdir(scratch) and files.is_real_dir(scratch):
                    self.kept_scratch = scratch.name
                    return
            except OSError:
                pass
        try:
            os.rmdir(scratch)
        except OSError:
            if files.is_real_dir(self.scratch_root):
                files.remove_tree(scratch)


#: ``scratch/`` is opened as a directory, never through a link.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _moved(old: machine.Machine, new: machine.Machine) -> bool:
    """Have a node's figures changed enough to be worth a write to the file server?

    A quarter of a load point, 1/32 of the memory, or anything else (the jobs
    found too big, the settings): what a reader choosing a node would notice.
    """
    return (abs(new.load1 - old.load1) >= 0.25
            or abs(new.mem_available_kb - old.mem_available_kb) * 32 > max(1, new.mem_total_kb)
            or (new.cpus, new.mem_total_kb, new.too_big, new.max_load, new.min_free_memory_kb)
            != (old.cpus, old.mem_total_kb, old.too_big, old.max_load, old.min_free_memory_kb))


def _queued_as(category: str | None, name: str) -> str:
    """``CATEGORY/NAME`` or ``NAME``: a queued job as a node file names it."""
    return f"{category}/{name}" if category else name


def _own_file(path: str) -> bool:
    """A regular file of ours with one name: safe to hand to the next job emptied."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_nlink == 1


def _joined(*parts: str | None) -> str | None:
    """Reasons joined with "; " (``None`` if there are none)."""
    text = "; ".join(p for p in parts if p)
    return text or None


def _discard(path: Path | str) -> None:
    """Remove a name of ours if we can; something else in its place is not our concern."""
    try:
        files.unlink(path)
    except OSError:  # a directory someone made there: EISDIR
        pass


def cancel_requested(jar: Jar, name: str) -> bool:
    """Is there a cancel request for ``name``?  Asked about once a second per running job.

    Listing the directory, rather than looking the name up, makes an NFS
    client revalidate it: a cached "no such file" answer could otherwise hide
    a request made on another node for up to a minute.
    """
    try:
        return name in os.listdir(jar.cancel)
    except OSError:
        return False


class _Interrupted(Exception):
    """Raised by the signal handler to end an idle sleep at once."""


def unusable(path: Path, info: os.stat_result) -> str | None:
    """Why a claimed file (``info``: its ``lstat``) must not be run, or ``None`` if it may."""
    mode = info.st_mode
    if len(os.fsencode(path.name)) > MAX_NAME_BYTES:
        return f"its name is longer than {MAX_NAME_BYTES} bytes (no room for its record)"
    if (mode & 0o170000) == 0o120000:
        return "a symbolic link (never followed out of the jar)"
    if (mode & 0o170000) != 0o100000:
        return "not a regular file"
    if info.st_size == 0:
        return "an empty file"
    if not mode & 0o111 or not os.access(path, os.X_OK):
        return "not executable"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def main_loop(argv: list[str] | None = None) -> None:
    """Run a worker in this process until it is stopped (a detached worker's entry point).

    A worker that cannot go on for a reason it can name (its jar was
    deleted) says so in one line and exits with status 1, no traceback.
    """
    try:
        limits, categories = pilot.parse(argv or [])
        worker = Worker(categories=categories or None, limits=limits)
        worker.reaper = True  # a process of its own: its children are its jobs
        worker.run()
    except JobJarError as exc:
        sys.stderr.write(f"worker: {printable(exc)}\n")
        sys.exit(1)
