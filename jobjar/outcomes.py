"""What comes back from a Python call: its value, its exception, or ``JobFailed``.

The caller (``executor.py``) reads the job's ``ID.result`` (``runner.py``
wrote it) and its final record; ``decode`` turns the two into the value
or the exception its future gets.  An exception raised by the call keeps
its type where it unpickles here, with the remote traceback as its cause,
as ``ProcessPoolExecutor`` does; a job that ended without a value gives
``JobFailed`` with its record's status and reason and the end of its
standard error.
"""

from __future__ import annotations

import os
import pickle

from . import states
from .errors import JobJarError
from .runner import ERROR, OK, RAISE

#: How much of a failed job's standard error ``JobFailed`` carries.
STDERR_TAIL = 4096


class JobFailed(JobJarError):
    """A call whose job ended without a value: timed out, cancelled, poisoned, ...

    ``job``, ``status`` and ``reason`` come from the job's record;
    ``stderr`` is the end of its standard error (may be empty).
    """

    def __init__(self, message: str, job: str | None = None, status: str | None = None,
                 reason: str | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.job, self.status, self.reason, self.stderr = job, status, reason, stderr


class RemoteTraceback(Exception):
    """The cause of a re-raised remote exception: its text is the traceback on the node."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.tb = text

    def __str__(self) -> str:
        return self.tb


def _tail(path: object) -> str:
    """The end of a job's standard error file (never through a link; ``""`` if none)."""
    from .files import read_tail

    if not isinstance(path, str) or not os.path.isabs(path):
        return ""
    return read_tail(path, STDERR_TAIL)[0].decode("utf-8", "replace")


def job_failed(name: str, record: dict, note: str | None = None) -> JobFailed:
    """``JobFailed`` for a call whose job left the jar without a value."""
    status, reason = record.get("status"), record.get("reason")
    stderr = _tail(record.get("stderr"))
    text = f"job {name} ended {status or 'without a record'}"
    if isinstance(reason, str) and reason:
        text += f": {reason}"
    if note:
        text += f"; {note}"
    last = [line for line in stderr.splitlines() if line.strip()]
    if last and not note:
        text += f" (stderr: {last[-1][:300]})"
    return JobFailed(text, name, status if isinstance(status, str) else None,
                     reason if isinstance(reason, str) else None, stderr)


def decode(name: str, record: dict, data: bytes | None, chunk: bool = False):
    """The value of a call (a list for a chunk of a map), or the exception to raise."""
    status = record.get("status")
    if data is None:
        return job_failed(name, record)
    try:
        result = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - a value of a class not importable here
        return job_failed(name, record, f"its result cannot be unpickled here: "
                                    f"{type(exc).__name__}: {exc}")
    if not isinstance(result, tuple) or not result:
        return job_failed(name, record, "its result file is not one of jobjar's")
    if result[0] == OK and status == states.SUCCEEDED and len(result) == 2:
        values = list(result[1])
        return values if chunk else values[0]
    if result[0] == RAISE and len(result) == 7 and status == states.FAILED:
        return _remote_exception(name, record, *result[1:])
    if result[0] == ERROR and len(result) == 2:
        return job_failed(name, record, str(result[1]))
    return job_failed(name, record)


def _remote_exception(name: str, record: dict, pickled, type_name, text, tb, node,
                      job) -> BaseException:
    """The call's exception, with its original type where it unpickles, and its traceback."""
    exc = None
    if isinstance(pickled, bytes):
        try:
            exc = pickle.loads(pickled)
        except Exception:  # noqa: BLE001 - its class does not exist here
            exc = None
    if not isinstance(exc, BaseException):
        exc = job_failed(name, record, f"the call raised {type_name}: {text} (that exception "
                                       "cannot be unpickled here)")
    exc.__cause__ = RemoteTraceback(f'\n"""\nTraceback on node {node}, job {job or name}:\n'
                                    f'{tb}"""')
    return exc
