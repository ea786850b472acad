"""Python functions on the jar: ``jobjar.Executor`` (``concurrent.futures``) and ``jobjar.map``.

Each ``submit`` (or chunk of a ``map``) is one job of the jar, submitted
through ``submit.write_job`` like any other, so category, priority,
timeout, retries, dependencies, ``system_status``, ``job_info``,
``cancel_job`` and recovery all apply.  Its job runs ``python -m
jobjar.runner CALLER ID``, which reads the pickled call from
``calls/CALLER/`` and writes the result next to it (``calls.py``).

A watcher thread per executor completes the futures: it wakes on the
result files (inotify on this node, a poll elsewhere) and, quickly at
first and then once a second, asks ``jobs._left_jar`` whether each job has
left the jar, so that a job that ends without a result (timed out,
cancelled, poisoned, dependency failed) fails its future with
``JobFailed``.  The thread exits when nothing is pending; nothing of it
outlives the calls.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import shlex
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import calls as jjcalls
from . import states
from .errors import JobJarError, SubmitError
from .layout import CALL_FILE, FUNCTION_FILE, Jar
from .outcomes import JobFailed, RemoteTraceback, decode, job_failed  # noqa: F401 - public here

#: Chunks per live worker that ``map`` aims at by default: a few interpreter
#: starts per worker, and some balance when calls take unequal times.
CHUNKS_PER_WORKER = 4
#: The longest pause of the watcher between two looks at the jar.
MAX_POLL = 1.0
#: The first pause (it grows by half each time nothing happened).
FIRST_POLL = 0.02


class JobFuture(cf.Future):
    """A ``Future`` whose call is job ``job`` of the jar."""

    def __init__(self, executor: Executor, job: str) -> None:
        super().__init__()
        self.job = job
        self._executor = executor
        self._cancelling = False

    def cancel(self) -> bool:
        """Cancel the job while it is queued or waiting (True); False once it runs or ran."""
        with self._condition:
            if self._state != "PENDING":
                return super().cancel()
            self._cancelling = True
        try:
            cancelled = self._executor._cancel_job(self.job)
        except BaseException:
            self._cancelling = False
            raise
        try:
            if cancelled:  # and no worker will take it: tell wait() and as_completed()
                super().cancel()
                self.set_running_or_notify_cancel()
            return cancelled
        finally:
            self._cancelling = False  # the watcher may now clean up after the job

    def __repr__(self) -> str:
        return f"<{type(self).__name__} job={self.job} {super().__repr__()[1:-1]}>"


@dataclass
class _Call:
    future: JobFuture
    call_id: str
    function: str | None = None  #: the map's ``ID.fn`` this chunk uses
    chunk: bool = False  #: a chunk of a map: its value is a list
    results_seen: int = 0  #: looks at a result file whose job had not left the jar yet


@dataclass
class _Functions:
    """How many chunks still use each ``ID.fn``: removed with the last."""

    users: dict[str, int] = field(default_factory=dict)


def _pickle(value: object, what: str) -> bytes:
    """``cloudpickle`` bytes of the call, or one clear error before anything is written."""
    import cloudpickle

    try:
        return cloudpickle.dumps(value)
    except Exception as exc:  # noqa: BLE001 - PicklingError, TypeError, RecursionError, ...
        raise SubmitError(f"cannot pickle {what}: {type(exc).__name__}: {exc}; "
                          "nothing submitted") from None


def _name_of(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _after_names(after) -> list[str] | None:
    """Job names from names, futures of an executor, or lists of them."""
    if after is None:
        return None
    items = [after] if isinstance(after, (str, cf.Future)) else list(after)
    names = []
    for item in items:
        if isinstance(item, JobFuture):
            names.append(item.job)
        elif isinstance(item, str):
            names.append(item)
        else:
            raise SubmitError(f"after= takes job names and jobjar futures, not {item!r}")
    return names or None


def _launch(python: str, chosen: bool) -> str:
    """The job's command line, with ``{runner}`` where the runner's arguments go.

    ``python=`` (``chosen``) runs as it is.  Otherwise the node's own
    ``JJ_PYTHON`` setting wins where a worker has one (the worker puts it in
    the job's environment), and else our own interpreter runs, with ``-S``:
    ``site`` (and whatever ``.pth`` files a site-packages holds) often costs
    more than the rest of the start-up, and the runner finds modules in our
    ``sys.path`` instead (``runner._loads``).  ``jobjar`` itself is found
    where we found it, after the worker's own ``PYTHONPATH``.
    """
    if chosen:
        return f"exec {shlex.quote(python)} {{runner}}"
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = f"PYTHONPATH=${{PYTHONPATH:+$PYTHONPATH:}}{shlex.quote(top)}"
    return (f'test -z "${{JJ_PYTHON:-}}" || {path} exec "$JJ_PYTHON" {{runner}}; '
            f"{path} exec {shlex.quote(python)} -S {{runner}}")


def _live_workers(jar: Jar) -> int:
    """Workers whose heartbeat is fresh (any node, any category): for chunk sizes only."""
    from .layout import WORKER_EXITED
    from .liveness import heartbeat_age

    now, count = time.time(), 0
    for worker in jar.workers():
        age = heartbeat_age(jar, worker, now)
        if age is not None and age < 60 and not os.path.lexists(
                jar.worker_dir(worker) / WORKER_EXITED):
            count += 1
    return count


def _shared_arguments(calls: list[tuple]) -> dict[int, object]:
    """Positions at which every call of a map passes the same object (written once)."""
    if len(calls) < 2:
        return {}
    first = calls[0]
    return {i: value for i, value in enumerate(first)
            if all(len(c) == len(first) and c[i] is value for c in calls)}


class Executor(cf.Executor):
    """Run Python calls as jobs of the jar; a ``concurrent.futures.Executor``.

    ``category``, ``priority``, ``timeout`` (a duration, per call or chunk),
    ``retries`` and ``after`` (job names and futures) are those of
    ``submit_job``; ``python`` is the interpreter that runs the calls
    (default: this one, ``sys.executable``, which must exist on the nodes).
    """

    def __init__(self, category: str | None = None, priority: int = 0,
                 timeout: float | str | None = None, retries: int = 0, after=None,
                 python: str | None = None) -> None:
        from . import submit
        from .config import load
        from .naming import check_category, check_priority

        self._config = load()
        self._jar = Jar.from_config(self._config)
        self._category = check_category(category)
        self._priority = check_priority(priority)
        self._opts = submit._options(self._jar, {"timeout": timeout, "retries": retries or None,
                                                 "after": _after_names(after)})
        chosen, python = python is not None, python or sys.executable
        if not isinstance(python, str) or not python or "\x00" in python or "\n" in python:
            raise SubmitError(f"python= must name an interpreter, not {python!r}")
        self._python = python
        self._launch = _launch(python, chosen)
        self._caller = jjcalls.CallerDir(self._jar, self._config.node)
        self._trust = jjcalls.result_trust(self._jar, self._category)
        self._pending: dict[str, _Call] = {}
        self._functions = _Functions()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._shutdown = False
        weakref.finalize(self, self._caller.close)  # an empty directory never stays behind

    # -- submitting ----------------------------------------------------------------

    def submit(self, fn: Callable, /, *args, **kwargs) -> JobFuture:
        """Run ``fn(*args, **kwargs)`` as one job; its future."""
        self._check_open()
        payload = _pickle((fn, args, kwargs), f"the call of {_name_of(fn)}")
        return self._submit_call(payload)

    def map(self, fn: Callable, *iterables: Iterable, timeout: float | None = None,
            chunksize: int | None = None):
        """``fn`` over the iterables, results in order; a chunk of calls is one job.

        ``chunksize=None`` picks about four chunks per live worker, so that
        many small calls cost a few interpreter starts per worker.  An
        argument that is the same object in every call (``itertools.repeat``
        of a data set) is written once, with the function.
        """
        end = None if timeout is None else time.monotonic() + timeout
        futures = self._map_futures(fn, iterables, chunksize)

        def results():
            try:
                futures.reverse()
                while futures:
                    future = futures.pop()
                    left = None if end is None else end - time.monotonic()
                    yield from future.result(left)
            finally:
                for future in futures:
                    future.cancel()

        return results()

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _map_futures(self, fn: Callable, iterables, chunksize: int | None) -> list[JobFuture]:
        """Pickle every chunk, then write the function once and submit the chunks."""
        self._check_open()
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        calls = list(zip(*iterables))
        if not calls:
            return []
        if chunksize is None:
            chunks = CHUNKS_PER_WORKER * max(_live_workers(self._jar), 1)
            chunksize = math.ceil(len(calls) / chunks)
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be a positive integer")
        shared = _shared_arguments(calls)
        what = f"the arguments of {_name_of(fn)}"
        payloads = [_pickle([(tuple(a for i, a in enumerate(args) if i not in shared), {})
                             for args in calls[at:at + chunksize]], what)
                    for at in range(0, len(calls), chunksize)]
        function = _pickle((fn, shared), f"the function {_name_of(fn)}")
        function_id = self._caller.new_id()
        self._caller.write(function_id, FUNCTION_FILE,
                           jjcalls.pack(jjcalls.header(), function))
        futures: list[JobFuture] = []
        with self._lock:  # counted before the first chunk is submitted: it may end at once
            self._functions.users[function_id] = len(payloads)
        try:
            for payload in payloads:
                futures.append(self._submit_call(payload, function_id))
        except BaseException:
            for future in futures:
                future.cancel()
            for _ in range(len(payloads) - len(futures)):  # the chunks never submitted
                self._release_function(function_id)
            raise
        return futures

    def _submit_call(self, payload: bytes, function: str | None = None) -> JobFuture:
        from . import submit

        call_id = self._caller.new_id()
        self._caller.write(call_id, CALL_FILE, jjcalls.pack(jjcalls.header(function), payload))
        command = self._launch.replace(
            "{runner}", f"-m jobjar.runner {self._caller.name} {call_id}")
        try:
            name = submit.write_job(submit._script(command, self._opts), self._priority, "py",
                                    self._category, self._opts, self._jar, config=self._config)
        except BaseException:
            self._caller.remove(call_id)
            raise
        future = JobFuture(self, name)
        with self._lock:
            self._pending[name] = _Call(future, call_id, function, chunk=function is not None)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name=f"jobjar-executor-{self._caller.name}")
                self._thread.start()
        self._wake.set()
        return future

    # -- cancelling and shutting down ------------------------------------------------

    def _cancel_job(self, name: str) -> bool:
        """Cancel job ``name`` if it is queued or waiting; False if it runs or has left."""
        from .jobs import _locate, cancel_job

        where = _locate(name, self._jar)
        if where is None or where.state not in (states.UNCLAIMED, states.WAITING):
            return False
        try:
            outcome = cancel_job(name, jar=self._jar)[0][1]
        except JobJarError:
            return False
        return outcome != "already finished"

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submissions; optionally cancel what is queued; optionally wait for the rest."""
        with self._lock:
            self._shutdown = True
            pending = [call.future for call in self._pending.values()]
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            cf.wait(pending)
            thread = self._thread
            if thread is not None:
                self._wake.set()
                thread.join()
            self._caller.close()

    # -- the watcher -------------------------------------------------------------------

    def _watch(self) -> None:
        """Complete the futures as their jobs leave the jar; exit when none is pending."""
        from .notify import Watcher

        watcher = Watcher()
        try:
            self._watch_loop(watcher)
        finally:
            watcher.close()
            with self._lock:  # however it ended, the next submit() starts a new one
                if self._thread is threading.current_thread():
                    self._thread = None

    def _watch_loop(self, watcher) -> None:
        from .jobs import _left_jar

        interval, last_full = FIRST_POLL, 0.0
        while True:
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
            if self._wake.is_set():
                self._wake.clear()
                interval = FIRST_POLL
            try:
                if self._caller.made:
                    watcher.add(self._caller.path)
                soon = self._collect(_left_jar)
                now = time.monotonic()
                if now - last_full >= interval:
                    with self._lock:
                        names = list(self._pending)
                    for name in names:
                        record = _left_jar(self._jar, name)
                        if record is not None:
                            self._finish(name, record)
                    self._mark_running()
                    last_full = now
                    interval = min(interval * 1.5, MAX_POLL)
            except Exception:  # noqa: BLE001 - a jar we cannot read now (NFS): look again
                soon, interval = False, MAX_POLL
            watcher.wait(0.01 if soon else min(interval, 0.25))

    def _mark_running(self) -> None:
        """``future.running()`` for the calls a worker holds now (one look at ``claimed/``)."""
        from .find import running_jobs

        with self._lock:
            waiting = {name: call.future for name, call in self._pending.items()
                       if call.future._state == "PENDING"}
        if not waiting:
            return
        for name in set(running_jobs(self._jar)) & set(waiting):
            future = waiting[name]
            with future._condition:  # (re-entrant) not while cancel() is deciding
                if not future._cancelling:
                    future.set_running_or_notify_cancel()

    def _collect(self, left_jar) -> bool:
        """Finish the calls whose result file is there; True to look again very soon."""
        ready = self._caller.results()
        if not ready:
            return False
        with self._lock:
            waiting = [(name, call) for name, call in self._pending.items()
                       if call.call_id in ready]
        soon = False
        for name, call in waiting:
            record = left_jar(self._jar, name)
            if record is None:  # the worker records the job just after its process ends
                call.results_seen += 1
                soon = soon or call.results_seen < 100
            else:
                self._finish(name, record)
        return soon

    def _finish(self, name: str, record: dict) -> None:
        with self._lock:
            call = self._pending.get(name)
            if call is None or call.future._cancelling:  # cancel() is deciding: next round
                return
            del self._pending[name]
        try:
            outcome = self._outcome(name, call, record)
        except Exception as exc:  # noqa: BLE001 - never a hung future
            outcome = JobFailed(f"job {name}: cannot read its result: {type(exc).__name__}: "
                                f"{exc}", name, record.get("status"))
        finally:
            self._caller.remove(call.call_id)
            self._release_function(call.function)
        future = call.future
        if future.cancelled():
            return
        try:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        except cf.InvalidStateError:
            pass

    def _release_function(self, function: str | None) -> None:
        if function is None:
            return
        with self._lock:
            left = self._functions.users.get(function, 1) - 1
            self._functions.users[function] = left
        if left <= 0:
            self._functions.users.pop(function, None)
            self._caller.remove(function, FUNCTION_FILE)

    def _outcome(self, name: str, call: _Call, record: dict):
        """The call's value, or the exception its future raises."""
        try:
            data = self._caller.read_result(call.call_id, self._trust)
        except jjcalls.Untrusted as exc:
            return job_failed(name, record, str(exc))
        return decode(name, record, data, call.chunk)


def map(fn: Callable, iterable: Iterable, *iterables: Iterable, chunksize: int | None = None,
        progress: bool | None = None, **executor_options) -> list:
    """``fn`` over ``iterable`` on the jar's workers; the list of results, in order.

    qjam's one call.  ``executor_options`` are ``Executor``'s; ``progress``
    (default: when standard error is a terminal) shows ``wait_jobs``' bar,
    counting chunks.
    """
    with Executor(**executor_options) as executor:
        futures = executor._map_futures(fn, (iterable, *iterables), chunksize)
        if progress is None:
            progress = sys.stderr.isatty()
        if progress and futures:
            from .jobs import wait

            wait([f.job for f in futures], progress=True, jar=executor._jar)
        return [value for future in futures for value in future.result()]


__all__ = ["Executor", "JobFailed", "map"]
