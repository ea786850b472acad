"""``run_now`` (``jobjar.run_now``): one command at once on the least-loaded idle node.

Seed 003's ``jr`` and Slurm's ``srun``, without a daemon.  The jar already
holds everything needed: the workers' directories say which worker is idle
(``status.worker_states``), the node files say how loaded each node is
(``machine.read_all``), a job can be sent to one node (``--node``, and the
category named after it, which that node's workers look at first), and
``live.Follower`` shows a job's output as it is written.  So ``run_now``:

1. waits until some worker is idle (saying so once), or gives up after
   ``max_wait`` (``NoIdleWorker``, nothing submitted);
2. picks, among the nodes with an idle worker whose own load and memory
   gates let it claim now, the one with the lowest 1-minute load per CPU
   (nodes of unknown load last; then the one with more idle workers; then
   by name);
3. submits the command there at the top priority, as a script that enters
   the caller's directory and runs the command with the caller's
   environment (``script``);
4. follows its output until it has left the jar, and returns its record;
   Ctrl-C cancels the job (``cancel_job``), shows the rest of its output,
   and raises ``KeyboardInterrupt`` again.

An idle worker may take another job just before ours: the job then waits,
at the top of its node's queue, for that node's next free worker (within
``max_wait``, if given, or it is cancelled).
"""

from __future__ import annotations

import math
import os
import shlex
import time
from typing import IO, Callable

from . import states
from .errors import JobJarError

__all__ = ["run_now", "NoIdleWorker"]

#: The ``-i`` identifier of run_now's jobs (their names say where they come from).
IDENTIFIER = "run_now"
#: Variables the worker sets for the job (``docs/protocol.md``) that the job keeps,
#: whatever the caller's environment holds: they describe this run, not the caller.
JOB_VARIABLES = ("JJ_HOME", "JJ_WORKER_HOME", "JJ_WORKER_DIR", "JJ_WORKER", "JJ_SCRATCH_DIR",
                 "JJ_JOB_NAME", "JJ_JOB_FILE", "JJ_NODE", "JJ_CATEGORY", "JJ_PRIORITY",
                 "JJ_ATTEMPT")
#: Pause between two looks for an idle worker (the jar is read, never written, meanwhile).
POLL = 0.5


class NoIdleWorker(JobJarError):
    """No worker was idle (or none took the job) within ``max_wait``."""


def script(command: str, cwd: str, env: dict[str, str]) -> str:
    """The job's command: enter ``cwd``, then run ``command`` with exactly ``env``.

    ``env -i`` clears the worker's environment; the caller's variables are
    given one by one, and the worker's ``JOB_VARIABLES`` are passed on.
    A variable whose name holds ``=`` cannot be given and is left out.
    """
    if "\x00" in command or "\x00" in cwd:
        raise JobJarError("the command or the directory contains a NUL byte")
    given = [shlex.quote(f"{key}={value}") for key, value in sorted(env.items())
             if key and "=" not in key and "\x00" not in key + value and key not in JOB_VARIABLES]
    kept = [f'{key}="${key}"' for key in JOB_VARIABLES]
    return (f"cd -- {shlex.quote(cwd)} || exit 1\n"
            f"exec env -i {' '.join(given + kept)} /bin/sh -c {shlex.quote(command)}")


def idle_workers(jar, node: str) -> dict[str, int]:
    """How many idle workers each node has now (``node``: this node, whose processes we see)."""
    from .status import _now, worker_states

    workers, _ = worker_states(jar, node, _now(jar))
    idle: dict[str, int] = {}
    for worker in workers:
        if worker["state"] == "idle":
            idle[worker["node"]] = idle.get(worker["node"], 0) + 1
    return idle


def choose_node(idle: dict[str, int], machines: dict) -> str | None:
    """The node to run on: the lowest load per CPU among nodes with an idle worker.

    ``machines``: ``machine.read_all``'s answer; a node it does not know
    (no file, stale, malformed) comes after every node it knows.  A node
    whose own gates hold its claims now (``JJ_MAX_LOAD``,
    ``JJ_MIN_FREE_MEMORY``: ``placement.node_gate``) is left out: its idle
    worker would not take the job.  Ties go to the node with more idle
    workers, then to the first name.
    """
    from .placement import node_gate

    def key(node: str) -> tuple:
        figures = machines.get(node)
        load = figures.load_per_cpu if figures is not None else math.inf
        return (load, -idle[node], node)

    def open_now(node: str) -> bool:
        figures = machines.get(node)
        return figures is None or node_gate(figures, figures.max_load,
                                            figures.min_free_memory_kb) is None

    candidates = [node for node, count in idle.items() if count > 0 and open_now(node)]
    return min(candidates, key=key) if candidates else None


def wait_for_node(jar, node: str, max_wait: float | None,
                  say: Callable[[str], None]) -> str:
    """The node to run on, once some worker is idle; ``NoIdleWorker`` after ``max_wait``."""
    from . import machine

    deadline = None if max_wait is None else time.monotonic() + max_wait
    told = False
    while True:
        idle = idle_workers(jar, node)
        chosen = choose_node(idle, machine.read_all(jar) if idle else {})
        if chosen is not None:
            return chosen
        if deadline is not None and time.monotonic() >= deadline:
            raise NoIdleWorker(f"no idle worker in {jar.home} within {max_wait:g} s "
                               "(nothing was run)")
        if not told:
            say("no idle worker in the jar that can take a job now; waiting for one"
                + (f" (at most {max_wait:g} s)" if max_wait is not None else ""))
            told = True
        time.sleep(POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic())))


def _wait_for_start(jar, name: str, deadline: float | None) -> None:
    """Return once the job runs or has left; past ``deadline``, cancel it and give up.

    (A worker that claims it in the same instant sees the cancel request and
    ends it at once: the job is cancelled either way.)
    """
    from .find import locate
    from .jobs import cancel_job

    while deadline is not None:
        where = locate(name, jar)
        if where is None or where.state not in (states.UNCLAIMED, states.LIMBO):
            return
        if time.monotonic() >= deadline:
            cancel_job(name, jar=jar)
            raise NoIdleWorker(f"no worker took the job within the wait allowed; {name} "
                               "was cancelled")
        time.sleep(POLL)


def run_now(command: str, max_wait: float | None = None, timeout: float | None = None,
            cwd: str | None = None, env: dict[str, str] | None = None, out: IO | None = None,
            err: IO | None = None, say: Callable[[str], None] | None = None) -> dict:
    """Run ``command`` at once on the least-loaded node with an idle worker; its record.

    It runs in ``cwd`` (default: ours) with ``env`` (default: ours) as its
    whole environment, plus the variables that describe the job
    (``JJ_JOB_NAME``, ...), at the top priority; its output goes to ``out``
    and ``err`` (default: ours) as it is written, and the job's final
    record is returned (``jobs.exit_status`` turns it into a shell's exit
    status).  ``timeout`` is the job's own ``--timeout``.  With no idle
    worker, ``say`` is told once and it waits, at most ``max_wait``
    seconds, after which it raises ``NoIdleWorker``.  (``say`` also hears
    of an output file not followed, as ``live.follow``'s ``problem`` does;
    by default nothing is said.)
    On ``KeyboardInterrupt`` the job is cancelled, the rest of its output
    shown, and the interrupt raised again (a second one stops at once).
    """
    from .config import load
    from .jobs import cancel_job
    from .layout import Jar
    from .live import Follower
    from .naming import MAX_PRIORITY
    from .submit import submit_job

    config = load()
    jar = Jar.from_config(config)
    say = say or (lambda message: None)
    text = script(command, os.getcwd() if cwd is None else os.fspath(cwd),
                  dict(os.environ) if env is None else env)
    began = time.monotonic()
    node = wait_for_node(jar, config.node, max_wait, say)
    # The node's own category (its workers look there first, no other node's do) and
    # --node (a worker elsewhere that serves a category of that name gives it back).
    name = submit_job(text, priority=MAX_PRIORITY, id=IDENTIFIER, category=node, node=node,
                      timeout=timeout)
    follower = Follower(name, out, err, jar, problem=say)
    try:
        try:
            _wait_for_start(jar, name, None if max_wait is None else began + max_wait)
            return follower.run()
        except KeyboardInterrupt:
            cancel_job(name, jar=jar)
            say(f"cancelled {name}")
            follower.run()  # what it printed until its worker ended it
            raise
    finally:
        follower.close()
