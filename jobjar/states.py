"""Where a job is (its state) and how it ended (its status), in one place.

A job's *state* is the directory it is in: ``docs/protocol.md`` draws the
tree.  A job's *status* is the ``status`` field of its record in
``results/``: ``retrying`` while it is back in the jar for another attempt,
one of ``FINAL`` once it has left the jar.  Everything else in the package
names states and statuses through these constants and tuples, so that a new
state is a change here (``layout.STATE_DIRS``, ``find.locate`` and
``system_status`` take their states from ``STATES``), in the code that moves
jobs into it, and in the protocol document.
"""

from __future__ import annotations

# -- states: the directory a job is in ----------------------------------------

LIMBO = "limbo"          #: being written by its submitter (never claimed)
WAITING = "waiting"      #: waiting for its dependencies
UNCLAIMED = "unclaimed"  #: queued, claimable
RUNNING = "running"      #: held by a worker (``workers/W/job/``)
COMPLETED = "completed"  #: left the jar, however it ended
REJECTED = "rejected"    #: set aside without running (not a runnable file)

#: Every state, in the order a job passes through them.
STATES = (LIMBO, WAITING, UNCLAIMED, RUNNING, COMPLETED, REJECTED)
#: States of a job still in the jar (it may yet run).
IN_JAR = (WAITING, UNCLAIMED, RUNNING)
#: States of a job that has left the jar.
LEFT = (COMPLETED, REJECTED)
#: States kept as a directory of their own, ``$JJ_HOME/STATE`` (a running job
#: is in its worker's ``job/``); those ``IN_JAR`` have a subdirectory per category.
DIRECTORIES = tuple(state for state in STATES if state != RUNNING)
#: The order in which ``find.locate`` looks for a job and ``system_status``
#: lists the states: the queue first (most lookups are of queued jobs), limbo
#: (not submitted yet) last; any other state in its place in ``STATES``.
SHOWN = (UNCLAIMED, WAITING, *(s for s in STATES if s not in (UNCLAIMED, WAITING, LIMBO)), LIMBO)

# -- statuses: the ``status`` field of a record --------------------------------

SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed-out"
DEPENDENCY_FAILED = "dependency-failed"
POISONED = "poisoned"
#: (``rejected`` is both a state and a status: the status of a job set aside.)

#: Statuses of a job that has left the jar.
FINAL = (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, DEPENDENCY_FAILED, POISONED, REJECTED)
#: Status of a record whose job went back into the jar for another attempt.
PENDING = "retrying"
#: Statuses after which a job with retries left runs again.
RETRYABLE = (FAILED, TIMED_OUT)


def final_state(status: str) -> str:
    """The directory a job with this final status goes to: ``rejected`` or ``completed``."""
    return REJECTED if status == REJECTED else COMPLETED
