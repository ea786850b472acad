"""The command of a Python call's job: ``python -m jobjar.runner CALLER ID``.

It runs in the job's process, on whatever node claimed the job: it reads
``calls/CALLER/ID.call`` (and the map's ``ID.fn``) through
``calls.open_trusted`` (written by the job file's owner, or nobody's code is
unpickled), runs the calls, and writes ``ID.result`` atomically.  It imports
little, because every chunk of a map pays for this interpreter's start.

The result is ``("ok", values)``, ``("raise", pickled exception or None,
type name, text, traceback, node, job)`` or ``("error", message)``, pickled
with the standard library when it can (no ``cloudpickle`` import) and with
``cloudpickle`` otherwise.  Exit status: 0 when every call returned, 1 when one raised (the
job's record says ``failed``, so retries apply), 2 when the call could not
be loaded (the message is in the result and on standard error).
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

from .layout import CALL_FILE, CALLS, FUNCTION_FILE, RESULT_FILE, Jar

OK, RAISE, ERROR = "ok", "raise", "error"


class LoadError(Exception):
    """The call cannot be loaded here; the message says why, for the caller."""


class Refused(LoadError):
    """The call file is not the job owner's: nothing is unpickled, nothing written there."""


def _node() -> str:
    return os.environ.get("JJ_NODE") or os.uname().nodename


def _job_owner() -> int:
    """The owner of the job file being run: the only user whose call may run.

    The worker gives its path (``JJ_JOB_FILE``, in its own ``job/``); run by
    hand, the runner trusts only its own user.
    """
    job = os.environ.get("JJ_JOB_FILE")
    if job:
        try:
            return os.lstat(job).st_uid
        except OSError:
            pass
    return os.geteuid()


def trusted_with_call() -> Callable[[int], bool]:
    """Who may have written the call this job runs: a ``uid -> bool``.

    The job file's owner, and only if that is our own user or one who may
    submit to the queue the job came from (``JJ_CATEGORY``): a neighbour
    who swaps the job file in a group-writable worker directory while it
    starts gains nothing from it, since only someone who could have
    submitted a job here anyway is believed.
    """
    owner, me = _job_owner(), os.geteuid()
    if owner == me:
        return lambda uid: uid == me
    from .access import may_write

    queue = Jar(Path(os.environ["JJ_HOME"])).queue_dir(os.environ.get("JJ_CATEGORY") or None)
    allowed = may_write(owner, queue)
    return lambda uid: allowed and uid == owner


def _read(directory: Path, name: str, owner) -> tuple[dict, bytes]:
    from .calls import Untrusted, open_trusted, unpack

    try:
        return unpack(open_trusted(directory, name, owner, "call"))
    except Untrusted as exc:
        raise Refused(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a garbled header: say so, never a traceback
        raise LoadError(f"{directory / name} is not a call file: {exc}") from None


def _loads(payload: bytes, head: dict, what: str):
    """Unpickle a payload, turning the usual failures into the caller's message.

    Started with ``-S`` (the caller's own interpreter: ``site`` and its
    ``.pth`` files can take most of the start-up), the runner looks for
    modules in the caller's ``sys.path`` first, and runs ``site`` only when
    a module is still missing.
    """
    try:
        try:
            return pickle.loads(payload)
        except ModuleNotFoundError:
            if not sys.flags.no_site or "site" in sys.modules:
                raise
            import site

            site.main()
            return pickle.loads(payload)
    except ModuleNotFoundError as exc:
        raise LoadError(f"cannot load the {what} on node {_node()}: no module named "
                        f"{exc.name!r} there (for {sys.executable}); install it on the node, "
                        "or keep it in a directory of the caller's sys.path that the node "
                        "sees at the same path") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is reported, not raised
        raise LoadError(f"cannot load the {what} on node {_node()}: "
                        f"{type(exc).__name__}: {exc}") from None


def load(directory: Path, call_id: str, owner: Callable[[int], bool]):
    """The function and the list of ``(args, kwargs)`` of call ``call_id``."""
    head, payload = _read(directory, call_id + CALL_FILE, owner)
    want = tuple(head.get("python") or ())
    if want != tuple(sys.version_info[:2]):
        raise LoadError(
            f"the call was pickled by Python {'.'.join(map(str, want))} "
            f"({head.get('executable')}) but node {_node()} runs it with Python "
            f"{sys.version_info[0]}.{sys.version_info[1]} ({sys.executable}): "
            "give jobjar.Executor(python=...) an interpreter of the caller's version")
    for entry in head.get("path") or ():  # the caller's modules, where the node sees them
        if isinstance(entry, str) and entry not in sys.path:
            sys.path.append(entry)
    calls = _loads(payload, head, "call")
    if head.get("function"):
        fn_head, fn_payload = _read(directory, head["function"] + FUNCTION_FILE, owner)
        fn, shared = _loads(fn_payload, fn_head, "function")
        return fn, [(_merge(args, shared), kwargs) for args, kwargs in calls]
    fn, args, kwargs = calls
    return fn, [(args, kwargs)]


def _merge(args: tuple, shared: dict) -> tuple:
    """Put a map's shared arguments (written once, in the function file) back in place."""
    if not shared:
        return args
    full, rest = [], iter(args)
    for position in range(len(args) + len(shared)):
        full.append(shared[position] if position in shared else next(rest))
    return tuple(full)


def run(fn, calls: list) -> tuple:
    """Run the calls in order; stop at the first exception (as a chunk of ``map``)."""
    import traceback

    values = []
    for args, kwargs in calls:
        try:
            values.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: it is the call's outcome
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return (RAISE, exc, type(exc).__qualname__, str(exc), text, _node(),
                    os.environ.get("JJ_JOB_NAME", ""))
    return (OK, values)


def _pickled(value: object) -> bytes | None:
    """``value`` pickled (the standard library first, then ``cloudpickle``), or ``None``."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a lambda, a local class: cloudpickle may manage
        pass
    import cloudpickle

    try:
        return cloudpickle.dumps(value)
    except Exception:  # noqa: BLE001
        return None


def encode(outcome: tuple) -> tuple[str, bytes]:
    """The result file's bytes: a tuple of plain values, the exception pickled on its own.

    On its own, so that an exception whose class the caller cannot import
    still arrives as its name, text and traceback; a value that cannot be
    pickled becomes a ``PicklingError`` for the caller, not a hung future.
    """
    if outcome[0] == RAISE:
        outcome = (RAISE, _pickled(outcome[1]), *outcome[2:])
    data = _pickled(outcome)
    if data is None:
        problem = f"the call's result cannot be pickled: {outcome[1]!r:.200}"
        try:
            _pickled_strictly(outcome[1])
        except Exception as exc:  # noqa: BLE001
            problem = f"the call's result cannot be pickled ({type(exc).__name__}: {exc})"
        outcome = (RAISE, pickle.dumps(pickle.PicklingError(problem)), "PicklingError",
                   problem, problem + "\n", _node(), os.environ.get("JJ_JOB_NAME", ""))
        data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    return outcome[0], data


def _pickled_strictly(value: object) -> None:
    import cloudpickle

    cloudpickle.dumps(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or not os.environ.get("JJ_HOME") \
            or any("/" in a or a.startswith(".") for a in argv):
        print("usage: python -m jobjar.runner CALLER ID (run by a job of the jar)",
              file=sys.stderr)
        return 2
    caller, call_id = argv
    directory = Path(os.environ["JJ_HOME"]) / CALLS / caller
    result_path = directory / (call_id + RESULT_FILE)
    from . import files

    outcome = None
    try:
        fn, calls = load(directory, call_id, trusted_with_call())
    except Refused as exc:  # maybe not the caller's directory at all: write nothing there
        print(f"jobjar.runner: {exc}", file=sys.stderr)
        return 2
    except LoadError as exc:
        outcome = (ERROR, str(exc))
        print(f"jobjar.runner: {exc}", file=sys.stderr)
    try:
        files.unlink(result_path)  # an earlier attempt's: never mistaken for this one's
    except OSError:
        pass
    if outcome is None:
        outcome = run(fn, calls)
    if outcome[0] == RAISE:
        sys.stderr.write(outcome[4])
    kind, data = encode(outcome)
    try:
        files.write_new(result_path, data, 0o640)
    except OSError as exc:
        print(f"jobjar.runner: cannot write the result {result_path}: {exc.strerror}",
              file=sys.stderr)
        return 2
    return {OK: 0, RAISE: 1}.get(kind, 2)


if __name__ == "__main__":
    sys.exit(main())
