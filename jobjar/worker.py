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
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import control, depend, execute, faults, records
from . import directives as jjdir
from .claim import QueueView
from .config import Config, load
from .errors import JobJarError
from .layout import (
    WORKER_EXITED,
    WORKER_HEARTBEAT,
    WORKER_INFO,
    WORKER_JOB,
    WORKER_LOG,
    WORKER_SCRATCH,
    Jar,
    held_job,
    relative_target,
)
from .naming import priority_of
from .notify import Watcher

#: Longest sleep between checks of a cancel request or control file while idle.
MAX_JITTER = 10.0
#: The empty scratch directory kept between jobs (a dot-file: not part of the protocol).
SPARE_SCRATCH = ".scratch-spare"
#: Shortest idle sleep, whatever JJ_PAUSE_TIME says.
MIN_SLEEP = 0.05
#: Longest job name that still leaves room for ``results/NAME.yaml`` in 255 bytes.
MAX_NAME_BYTES = 250


def job_search_path() -> dict[str, str]:
    """Environment additions so that jobs find ``submit_job`` and ``import jobjar``."""
    top = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    paths = []
    if (top / "bin" / "submit_job").exists():  # running from a checkout
        paths.append(str(top / "bin"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(top), env.get("PYTHONPATH")]))
    paths.append(os.path.dirname(sys.executable))
    env["PATH"] = os.pathsep.join(paths + [env.get("PATH", "/usr/bin:/bin")])
    return env


class Worker:
    """One worker process and its directory ``$JJ_WORKER_HOME/<node>.<pid>``."""

    def __init__(self, config: Config | None = None, categories: list[str] | None = None) -> None:
        self.config = config or load()
        self.jar = Jar.from_config(self.config)
        self.name = f"{self.config.node}.{os.getpid()}"
        self.dir = self.jar.worker_dir(self.name)
        wanted = [self.config.node, *(categories or self.config.categories)]
        self.categories = list(dict.fromkeys(wanted))
        self.views: list[tuple[str | None, QueueView]] = [
            (c, QueueView(self.jar.queue_dir(c))) for c in self.categories]
        self.views.append((None, QueueView(self.jar.unclaimed, skip_dirs=True)))
        self.watcher = Watcher()
        self.next_beat = 0.0
        self.log_file = None
        self.base_env = job_search_path()
        self.spares = self.jar.spare_outputs(self.name)
        self.controls = control.WorkerControls(self.jar, self.dir)
        # paths used for every job, worked out once
        self.link = os.fspath(self.jar.claimed_link(self.name))
        self.scratch = self.dir / WORKER_SCRATCH
        self.spare_scratch = os.fspath(self.dir / SPARE_SCRATCH)
        # claimed/W -> ../workers/W/job/...: relative (nodes mount the jar at
        # different paths), and its fixed part worked out once, not per job.
        self.link_prefix = relative_target(self.dir, self.jar.claimed) + os.sep
        self.terminated = False  # SIGTERM/SIGINT: stop like STOP, after the current job
        self.sleeping = False

    # -- set-up and shut-down ------------------------------------------------

    def setup(self) -> None:
        """Create the worker directory and describe ourselves in it."""
        import psutil

        if os.geteuid() == 0 and not self.config.allow_root:
            raise JobJarError("refusing to run jobs as root; set JJ_ALLOW_ROOT=yes to allow it")
        self.jar.ensure()
        execute.seal_descriptors()
        if os.path.isdir(self.dir):  # our pid was a dead worker's: repair first
            from .recovery import recover_worker

            recover_worker(self.jar, self.config, self.name, "its pid was reused on this node",
                           local=True)
            for stale in ("STOP", "PAUSE", WORKER_EXITED):
                _unlink(self.dir / stale)
        for spare in self.spares:  # a dead namesake's output is not ours to hand on
            _unlink(spare)
        os.makedirs(self.dir / WORKER_JOB, exist_ok=True)
        for category in self.categories:
            os.makedirs(self.dir / WORKER_JOB / category, exist_ok=True)
        # Hand-made job names may hold bytes that are not UTF-8: escape, never crash.
        self.log_file = open(self.dir / WORKER_LOG, "a", buffering=1, encoding="utf-8",
                             errors="backslashreplace")
        info = {"worker": self.name, "node": self.config.node, "pid": os.getpid(),
                "create_time": psutil.Process().create_time(),
                "started": records.utc_iso(time.time()),
                "categories": self.categories, "python": sys.executable,
                "host": os.uname().nodename, "user": records.owner_name(os.geteuid()),
                "heartbeat": self.config.heartbeat}
        records.write(self.dir / WORKER_INFO, info)
        self.beat(force=True)
        # Whoever can write a queue directory runs code as us (docs/security.md).
        # waiting/ too: its jobs are moved into the queue when their dependencies end
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
        self.log(f"start categories={','.join(self.categories)}")
        for directory in (self.jar.worker_home, self.dir, self.jar.unclaimed, self.jar.cancel):
            self.watcher.add(directory)

    def log(self, message: str) -> None:
        """Append a time-stamped line to the worker's log."""
        if self.log_file:
            self.log_file.write(f"{records.utc_iso(time.time())} {message}\n")

    def beat(self, force: bool = False) -> None:
        """Refresh the heartbeat file if it is due."""
        now = time.monotonic()
        if force or now >= self.next_beat:
            path = self.dir / WORKER_HEARTBEAT
            try:
                os.utime(path)
            except FileNotFoundError:
                open(path, "a").close()
            self.next_beat = now + max(0.05, self.config.heartbeat)

    # -- the loop ------------------------------------------------------------

    def run(self, ready: Callable[[str], None] | None = None) -> None:
        """Claim and run jobs until told to stop (``ready(name)`` once set up)."""
        self.setup()
        if ready:
            ready(self.name)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._terminate)
        clean = False
        try:
            while True:
                self.beat()
                if self.terminated or self.controls.stopped():
                    self.log("stop" + (" (signal)" if self.terminated else ""))
                    break
                if self.controls.paused():
                    self.sleep()
                    continue
                claimed = self.claim()
                if claimed is None:
                    depend.release(self.jar)
                    self.sleep()
                    continue
                self.handle_safely(*claimed)
                depend.release(self.jar)
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
            if clean:
                open(self.dir / WORKER_EXITED, "w").close()
            self.watcher.close()

    def _terminate(self, signum: int, frame: object) -> None:
        """A termination signal stops the worker, but never in the middle of a job."""
        self.terminated = True
        if self.sleeping:
            raise _Interrupted()

    def claim(self) -> tuple[str | None, Path] | None:
        """Rename the next job into our ``job/`` directory, or return ``None``."""
        events = self.watcher.drain() if self.watcher.active else None
        if events:  # local submissions made while we were busy: no re-listing needed
            self._route(events)
        for category, view in self.views:
            dest_dir = self.dir / WORKER_JOB / category if category else self.dir / WORKER_JOB
            path = view.claim(dest_dir)
            if path is not None:
                return category, path
        return None

    def sleep(self) -> None:
        """Sleep ``JJ_PAUSE_TIME`` +-10 % (at most 10 s off), waking on local events."""
        base = self.config.pause_time
        jitter = min(base * 0.1, MAX_JITTER)
        # At least MIN_SLEEP, so that JJ_PAUSE_TIME=0 polls instead of spinning.
        deadline = time.monotonic() + max(MIN_SLEEP, base + random.uniform(-jitter, jitter))
        for _, view in self.views:  # categories created since we last looked
            self.watcher.add(view.path)
        self.sleeping = True
        try:
            while not self.terminated:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(left, max(0.05, self.next_beat - time.monotonic()))
                events = self.watcher.wait(wait)
                self.beat()
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
            if directory in (str(self.jar.worker_home), str(self.dir)) and name in (
                    "STOP", "PAUSE", "STOP_ALL", "PAUSE_ALL"):
                wake = True
            if directory == str(self.jar.unclaimed) and name in self.categories:
                self.watcher.add(self.jar.unclaimed / name)
                wake = True
        return wake

    # -- one job -------------------------------------------------------------

    def handle_safely(self, category: str | None, path: Path) -> None:
        """Handle a job; if the worker itself fails, give the job back and go on.

        An unexpected error (a full disk, a vanished jar) must not leave the
        job stranded until cron notices: it goes back into the jar, counted
        as a recovery so that the poison limit still applies.
        """
        try:
            self.handle(category, path)
        except _Interrupted:
            raise
        except Exception as exc:  # OSError mostly; anything else must not kill us either
            self.log(f"error while handling {path.name}: {exc}")
            from .recovery import recover_worker

            try:
                recover_worker(self.jar, self.config, self.name, f"worker error: {exc}")
            except OSError as again:
                self.log(f"could not give {path.name} back: {again}")
            if held_job(self.dir) is not None:  # still ours: stop, and leave it to recover_jobs
                self.log("exiting: a job is stuck in this worker's directory")
                self.terminated = True
            time.sleep(min(self.config.pause_time, 1.0))

    def handle(self, category: str | None, path: Path) -> None:
        """Run one claimed job through to ``completed/`` (or back to the jar)."""
        claimed_at = time.time()
        faults.hit("after-claim")
        link = self.link
        held = f"{category}/{path.name}" if category else path.name
        target = f"{self.link_prefix}{WORKER_JOB}/{held}"
        try:
            os.symlink(target, link)
        except FileExistsError:  # left by an earlier crash of a worker with our name
            _unlink(link)
            os.symlink(target, link)
        faults.hit("after-link")
        name = path.name
        self.log(f"claim {name}")
        record = self.new_record(category, path, claimed_at)
        status, reason, outcome = self.run_job(category, path, record)
        if outcome is not None:
            record.update(started=records.utc_iso(outcome.started),
                          finished=records.utc_iso(outcome.finished),
                          duration=round(outcome.finished - outcome.started, 6),
                          exit_code=outcome.exit_code, signal=outcome.signal)
            record["attempts"].append({k: record[k] for k in (
                "attempt", "worker", "node", "started", "finished", "exit_code", "signal")}
                | {"status": status})
        else:
            record["finished"] = records.utc_iso(time.time())
        retry = status in ("failed", "timed-out") and record["attempt"] <= record["retries"]
        record.update(status=records.PENDING if retry else status, reason=reason)
        faults.hit("after-exit")
        self.finish(category, path, record, retry)

    def new_record(self, category: str | None, path: Path, claimed_at: float) -> dict:
        """The record of this attempt, carrying earlier attempts' history."""
        name = path.name
        prior = records.read(self.jar.record(name)) or {}
        if prior.get("worker") == self.name:
            # Our own earlier attempt (a retry, or a finished job's name used again).
            # Recovery reads "our record + our job/" as "only the move was lost", so
            # un-name us first: if we die running this attempt, it is a lost attempt.
            records.write(self.jar.record(name), dict(prior, worker=None))
        if prior.get("status") != records.PENDING:  # a finished job's name used again
            prior = {}
        submitted, owner = records.file_facts(path)
        out, err = self.jar.default_output(name)
        return {
            "name": name, "category": category, "priority": priority_of(name),
            "submitter": owner, "node": self.config.node, "worker": self.name,
            "submitted": prior.get("submitted") or records.utc_iso(submitted),
            "claimed": records.utc_iso(claimed_at), "started": None, "finished": None,
            "duration": None, "exit_code": None, "signal": None, "status": None, "reason": None,
            "attempt": int(prior.get("attempt", 0)) + 1, "retries": 0,
            "recoveries": int(prior.get("recoveries", 0)),
            "stdout": str(out), "stderr": str(err), "attempts": list(prior.get("attempts", [])),
        }

    def run_job(self, category: str | None, path: Path, record: dict):
        """Check, then run the job.  Returns ``(status, reason, outcome)``."""
        name = path.name
        if os.path.lexists(f"{self.jar.cancel}/{name}"):
            return "cancelled", "cancelled before it started", None
        problem = unusable(path)
        if problem:
            return "rejected", problem, None
        try:
            with open(path, "rb") as src:
                opts = jjdir.parse(src.read(jjdir.HEAD_BYTES))
        except jjdir.DirectiveError as exc:
            return "failed", str(exc), None
        except OSError as exc:
            return "rejected", f"cannot read the job file: {exc.strerror}", None
        record["retries"] = opts.retries
        if opts.dependencies:
            verdict, reason = depend.state(self.jar, opts)
            if verdict == "failed":
                return "dependency-failed", reason, None
            if verdict == "wait":
                return "waiting", None, None
        # A relative path (hand-made files) goes to output/, not the short-lived scratch.
        out = os.path.join(self.jar.output, opts.output) if opts.output else record["stdout"]
        err = os.path.join(self.jar.output, opts.error) if opts.error else record["stderr"]
        record.update(stdout=out, stderr=err)
        # A first attempt's default output goes to this worker's spare files
        # (no new files for a silent job); a retry appends to the job's own.
        spares = {}
        if record["attempt"] == 1:
            for key, chosen, spare in zip(("stdout", "stderr"), (opts.output, opts.error),
                                          self.spares):
                if not chosen:
                    spares[key] = str(spare)
        scratch = self.make_scratch()
        faults.hit("after-scratch")
        env = self.job_env(category, path, scratch, record, opts)
        started = time.time()
        try:
            retry = record["attempt"] > 1
            proc = execute.spawn(
                path, scratch, env,
                (spares.get("stdout", out), not opts.output, retry or "stdout" in spares),
                (spares.get("stderr", err), not opts.error, retry or "stderr" in spares))
        except (OSError, execute.subprocess.SubprocessError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return "failed", f"cannot start the job: {reason}", None
        self.log(f"start {name} pid={proc.pid}")
        faults.hit("while-running")
        why, finished = execute.supervise(
            proc, opts.timeout, self.config.kill_grace,
            lambda: cancel_requested(self.jar, name), self.beat)
        kept = execute.keep_outputs([(spare, record[key]) for key, spare in spares.items()],
                                    proc.pid)
        record.update(zip(spares, kept))
        result = execute.outcome(proc, started, finished, why)
        reason = result.reason
        if why == "timed-out":
            reason = f"ran longer than its timeout of {opts.timeout:g} s"
        return result.status, reason, result

    def make_scratch(self) -> Path:
        """A fresh, empty scratch directory for the next job.

        Creating a directory can cost hundreds of microseconds on a busy
        disk, so the empty directory a job leaves behind is kept under a
        hidden name and renamed back for the next job (one cheap rename).
        """
        scratch = self.scratch
        if os.path.lexists(scratch):  # left by a crash, or by a failed clean-up
            shutil.rmtree(scratch, ignore_errors=True)
        try:
            os.rename(self.spare_scratch, scratch)
            with os.scandir(scratch) as entries:  # a lingering child may have written in it
                if next(entries, None) is None:
                    return scratch
            shutil.rmtree(scratch, ignore_errors=True)
        except OSError:
            pass
        os.makedirs(scratch, exist_ok=True)
        return scratch

    def remove_scratch(self) -> None:
        """Remove the job's scratch directory (keeping it as the spare if empty)."""
        scratch = self.scratch
        try:
            with os.scandir(scratch) as entries:
                empty = next(entries, None) is None
            if empty:
                os.rename(scratch, self.spare_scratch)
                return
        except OSError:
            pass
        shutil.rmtree(scratch, ignore_errors=True)

    def job_env(self, category, path, scratch, record, opts) -> dict:
        """The job's environment: ours plus the ``JJ_*`` variables."""
        env = dict(self.base_env)
        env.update(JJ_HOME=str(self.jar.home), JJ_WORKER_HOME=str(self.jar.worker_home),
                   JJ_WORKER_DIR=str(self.dir), JJ_SCRATCH_DIR=str(scratch),
                   JJ_JOB_NAME=path.name, JJ_JOB_FILE=str(path), JJ_NODE=self.config.node,
                   JJ_CATEGORY=category or "", JJ_PRIORITY=str(record["priority"]),
                   JJ_ATTEMPT=str(record["attempt"]), JJ_WORKER=self.name)
        if opts.array_index is not None:
            env["JJ_ARRAY_INDEX"] = str(opts.array_index)
        else:
            env.pop("JJ_ARRAY_INDEX", None)
        return env

    def finish(self, category: str | None, path: Path, record: dict, retry: bool) -> None:
        """Record the attempt, move the job on, and clean up after it."""
        name = path.name
        status = record["status"]
        if status == "waiting":
            target = self.jar.waiting_dir(category) / name
        else:
            try:
                records.write(self.jar.record(name), record)
            except OSError as exc:  # a name too long for results/: set aside all the same
                if status != "rejected":
                    raise
                self.log(f"no record for {name}: {exc.strerror}; reason: {record['reason']}")
            faults.hit("after-record")
            if retry:
                target = self.jar.queue_dir(category) / name
            elif status == "rejected":
                target = self.jar.rejected / name
            else:
                target = self.jar.completed / name
        try:
            os.rename(path, target)
        except FileNotFoundError:
            os.makedirs(target.parent, exist_ok=True)
            os.rename(path, target)
        faults.hit("after-move")
        _unlink(self.link)
        faults.hit("after-unlink")
        self.remove_scratch()
        if status != "waiting" and not retry:  # done: a late request must not outlive it
            _unlink(f"{self.jar.cancel}/{name}")
        self.log(f"finish {name} {status}")


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


def unusable(path: Path) -> str | None:
    """Why a claimed file must not be run, or ``None`` if it may."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot stat the job file: {exc.strerror}"
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


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def main_loop(categories: list[str] | None = None) -> None:
    """Run a worker in this process until it is stopped."""
    Worker(categories=categories).run()
