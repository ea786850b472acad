"""Starting workers and keeping this node's number of them: ``start_worker``, ``check_workers``.

A detached worker runs in a new session with its standard streams away from
the terminal; ``start_worker`` waits until the worker has created its
directory, so that it can print the worker's name or the reason it failed.

``check_workers`` keeps ``JJ_MAX_WORKERS`` workers running on this node.
Cron runs it every few minutes, so workers come back after a reboot or a
crash.  Only this node's workers are counted, and only those whose process
is really theirs (see ``liveness``).  Runs on one node are serialised by a
lock file in the workers' home (``.check.NODE.lock``), so two at once
cannot start more than the limit; a node found over the limit (workers
started by hand, or by an older version) gets ``STOP`` in its youngest
workers' directories.  Directories of long-dead workers can be pruned; one
that still holds a job is left for ``recover_jobs``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import files
from .config import load, overrides_as_env
from .errors import JobJarError
from .layout import (
    STOP,
    STOP_ALL,
    WORKER_EXITED,
    WORKER_HEARTBEAT,
    WORKER_INFO,
    WORKER_LOG,
    Jar,
    checkout,
    held_job,
)
from .liveness import is_alive_here, read_info
from .naming import check_category, split_worker_name

#: How long ``start_worker`` waits for a new worker to report in.
START_TIMEOUT = 30.0


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides_as_env())
    top = checkout()  # installed: the package is importable as it is
    if top is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(top), env.get("PYTHONPATH")]))
    return env


def start_worker(categories: list[str] | tuple[str, ...] = (), foreground: bool = False,
                 ready: Callable[[str], None] | None = None, *, exit_when_empty: bool = False,
                 max_jobs: int | str | None = None,
                 max_time: float | str | None = None) -> str:
    """Start a worker claiming ``categories`` (else ``JJ_CATEGORIES``); return its name.

    In the foreground this only returns when the worker stops; ``ready`` is
    called with its name once it has set itself up.  ``exit_when_empty``,
    ``max_jobs`` and ``max_time`` (a duration) make it a pilot that ends by
    itself (``pilot``).
    """
    from .pilot import limits as pilot_limits

    for category in categories:
        check_category(category)
    limits = pilot_limits(exit_when_empty, max_jobs, max_time)
    config = load()
    if foreground:
        from .worker import Worker

        worker = Worker(config, list(categories) or None, limits)
        worker.run(ready)
        return worker.name
    jar = Jar.from_config(config)
    code = "import sys; from jobjar.worker import main_loop; main_loop(sys.argv[1:] or None)"
    with tempfile.TemporaryFile() as errors:
        args = [*limits.argv(), "--", *categories] if limits else list(categories)
        child = subprocess.Popen([sys.executable, "-c", code, *args], env=_child_env(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=errors, start_new_session=True, close_fds=True)
        name = f"{config.node}.{child.pid}"
        info = jar.worker_dir(name) / WORKER_INFO
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if info.exists():  # it started (whatever it has done since)
                return name
            if child.poll() is not None and not info.exists():
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                message = lines[-1] if lines else f"exit status {child.returncode}"
                # "jobjar.errors.JobJarError: refusing ..." -> "refusing ..."
                message = re.sub(r"^[\w.]+(Error|Exception): ", "", message)
                raise JobJarError(f"the worker did not start: {message}")
            time.sleep(0.01)
        raise JobJarError(f"the worker {name} did not report in within {START_TIMEOUT:g} s")


# -- keeping JJ_MAX_WORKERS running ------------------------------------------------


def live_workers(jar: Jar, node: str) -> list[str]:
    """This node's workers that are alive now."""
    return [w for w in jar.workers() if is_alive_here(jar, w, node)]


def check_workers(prune_older_than: float | None = None, start: bool = True, *,
                  exit_when_empty: bool = False, max_jobs: int | str | None = None,
                  max_time: float | str | None = None) -> dict:
    """Start or stop workers until this node runs ``JJ_MAX_WORKERS``; report what was done.

    ``exit_when_empty``, ``max_jobs``, ``max_time``: the workers it starts are
    pilots with these limits (``start_worker``); the running ones count as they are.

    Returns ``{"node", "max_workers", "alive", "started", "stopped", "pruned",
    "stop_all"}``.  ``stopped`` are surplus workers asked to exit (``STOP``),
    the youngest first; workers already stopping are not counted twice.
    With ``STOP_ALL`` present nothing is started (new workers would exit at once).
    """
    from .pilot import limits as pilot_limits

    pilot = pilot_limits(exit_when_empty, max_jobs, max_time)._asdict()  # checked before any
    config = load()
    jar = Jar.from_config(config)
    jar.ensure()
    with _node_lock(jar, config.node):
        alive = live_workers(jar, config.node)
        report = {"node": config.node, "max_workers": config.max_workers, "alive": alive,
                  "started": [], "stopped": [], "pruned": [],
                  "stop_all": os.path.lexists(jar.worker_home / STOP_ALL)}
        if prune_older_than is not None:
            report["pruned"] = prune(jar, config.node, prune_older_than)
        if not start:
            return report
        report["stopped"] = _stop_surplus(jar, alive, config.max_workers)
        if report["stop_all"]:
            return report
        for _ in range(config.max_workers - len(alive)):
            report["started"].append(start_worker(**pilot))
    return report


#: Longest wait of ``check_workers`` for another one on the same node.
LOCK_WAIT = 60.0


class _node_lock:
    """An exclusive ``flock`` on ``workers/.check.NODE.lock`` while ``check_workers`` runs.

    Opened without following links (a planted link fails instead of locking,
    or creating, someone else's file) and without blocking on a planted fifo.
    """

    def __init__(self, jar: Jar, node: str) -> None:
        self.path = jar.check_lock(node)
        self.fd = -1

    def __enter__(self) -> _node_lock:
        import fcntl
        import stat

        flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            self.fd = os.open(self.path, flags, 0o666)
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                raise JobJarError(f"{self.path} is not a regular file: remove it")
            self._wait_for(fcntl)
        except OSError as exc:
            self.__exit__()
            raise JobJarError(f"cannot lock {self.path}: {exc.strerror}") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for(self, fcntl) -> None:
        """Take the lock, waiting at most ``LOCK_WAIT`` seconds.

        Anyone who may write ``workers/`` may open the file and hold the lock
        for ever: cron's ``check_workers`` must then give up with one line,
        not pile up behind it.
        """
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise JobJarError(f"another check_workers has held {self.path} for "
                                      f"{LOCK_WAIT:g} s; try again later") from None
                time.sleep(0.05)

    def __exit__(self, *_exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _stop_surplus(jar: Jar, alive: list[str], limit: int) -> list[str]:
    """Write ``STOP`` into the youngest live workers beyond ``limit``; return them."""
    staying = [w for w in alive if not os.path.lexists(jar.worker_dir(w) / STOP)]
    surplus = sorted(staying, key=lambda w: _age_key(jar, w), reverse=True)
    stopped = []
    for worker in surplus[:max(0, len(staying) - max(limit, 0))]:
        from .control import stop_workers

        stop_workers(worker, jar=jar)
        stopped.append(worker)
    return stopped


def _age_key(jar: Jar, worker: str) -> tuple[float, int]:
    """Sort key, larger is younger: the start in clock ticks (else wall clock), then the pid."""
    from .liveness import number

    info = read_info(jar.worker_dir(worker))
    started = number(info.get("start_ticks"))
    if started is None:
        started = number(info.get("create_time"))
    try:
        pid = split_worker_name(worker)[1]
    except ValueError:
        pid = 0
    return (started if started is not None else 0.0, pid)


def prune(jar: Jar, node: str, older_than: float) -> list[str]:
    """Remove this node's dead workers' directories untouched for ``older_than`` seconds."""
    pruned = []
    now = time.time()
    for worker in jar.workers():
        wdir = jar.worker_dir(worker)
        if is_alive_here(jar, worker, node) is not False or held_job(wdir) is not None:
            continue
        newest = max((_mtime(wdir / f) for f in (WORKER_HEARTBEAT, WORKER_EXITED, WORKER_LOG)),
                     default=0.0)
        if now - newest < older_than:
            continue
        if os.path.lexists(jar.claimed_link(worker)):
            continue
        files.remove_tree(wdir)
        for spare in jar.hidden_outputs(worker):
            files.unlink(spare)
        pruned.append(worker)
    return pruned


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
