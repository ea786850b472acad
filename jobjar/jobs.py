"""Working with single jobs: where is it, cancel it, run it again, wait for it.

All of it goes through the same files as everything else: ``find.locate``
to see where a job is, a request file in ``cancel/`` that the worker running
a job polls, and renames between the state directories.  There is no daemon
to ask, so every function here works from any node that sees the jar.

The record is the truth about a job that has left: a job whose record is
final and whose file is nowhere in the jar (it deleted itself, or someone
cleaned ``completed/``) has left the jar, and ``job_info`` and ``wait`` say
so instead of calling it unknown or waiting for it forever.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import directives as jjdir
from . import files, records, states
from .errors import JobJarError
from .find import Location, locate, running_jobs, select
from .layout import Jar, held_category, jobs_in
from .naming import check_category, priority_of

#: How many times a job that moves while we act on it is looked up again.
RELOOK = 5
#: Longest pause between two looks of ``wait``.
MAX_POLL = 1.0
#: ``reason`` of the record ``wait`` gives for a name no job had when it started.
UNKNOWN = "no job of this name in the jar"


class WaitTimeout(JobJarError):
    """``wait`` gave up before every job had left the jar."""


def _final_record(name: str, jar: Jar) -> dict | None:
    """The record of job ``name`` if it is final (the job has left the jar), else ``None``."""
    if not name or "/" in name or "\x00" in name or name in (".", ".."):
        return None
    record = records.read(jar.record(name))
    if record and record.get("status") in states.FINAL:
        return record
    return None


def _find(name: str, jar: Jar) -> Location:
    """Where job ``name`` is; a job gone from the jar with a final record is there too.

    Such a job gets the state its status leads to (``completed`` or
    ``rejected``) and ``path`` ``None``: its file is gone, its record stays.
    """
    where = _locate(name, jar)
    if where is not None:
        return where
    record = _final_record(name, jar)
    if record is not None:
        return Location(states.final_state(record["status"]), None, _category(record))
    raise JobJarError(f"no job named {name!r} in {jar.home}")


def _category(record: dict) -> str | None:
    """The record's category if it is a valid one (a record is somebody's file)."""
    try:
        return check_category(record.get("category"))
    except JobJarError:
        return None


def _locate(name: str, jar: Jar) -> Location | None:
    """``locate``, looking again when a job is caught between two directories.

    ``locate`` checks the directories one after another, so a job renamed
    from a worker back into ``unclaimed/`` (a retry) just after we looked
    there is seen nowhere; a second look finds it.
    """
    for _ in range(RELOOK):
        where = locate(name, jar)
        if where is not None:
            return where
    return None


def _flat(names) -> list[str]:
    """Names given one by one, as lists (``submit_job(array=...)``), or as one string."""
    if isinstance(names, (str, os.PathLike)):
        return [os.fspath(names)]
    flat = []
    for name in names:
        flat += _flat(name) if not isinstance(name, str) else [name]
    return flat


def job_info(name: str, jar: Jar | None = None) -> dict:
    """Where job ``name`` is now and its record (``None`` if it has none yet).

    ``state`` is one of limbo, waiting, unclaimed, running, completed and
    rejected; a running job also has ``worker`` and ``running_for`` (seconds,
    by the jar's own clock, so a node with a wrong clock still gets it right).
    ``batch`` is the batch of an ``--array`` or ``--from-file`` job.
    A job that left the jar and whose file is gone has ``path`` ``None``.
    ``name`` may be a unique prefix of the name (``find.resolve``).
    A running job's ``live_output`` says where its output is being written
    (``live.live_output``; ``live.follow`` shows it as it comes).
    """
    jar = jar or Jar.from_config()
    name = select([name], jar)[0]
    where = _find(name, jar)
    info = {"name": name, "state": where.state,
            "path": None if where.path is None else str(where.path),
            "category": where.category, "worker": where.worker, "running_for": None,
            "cancel_requested": os.path.lexists(jar.cancel_request(name)),
            "record": records.read(jar.record(name)), "held_back": None,
            "live_output": None}
    record = info["record"] if isinstance(info["record"], dict) else {}
    info["batch"] = record.get("batch") if isinstance(record.get("batch"), str) else None
    if info["batch"] is None and where.path is not None:  # not run yet: its file says
        info["batch"] = records.batch_of(where.path)
    if where.state == states.UNCLAIMED and where.path is not None:
        info["held_back"] = _held_back(jar, where.path)
    if where.state == states.RUNNING:
        from .live import live_output
        from .liveness import reading_now

        info["live_output"] = live_output(name, jar, where)

        try:
            since = os.lstat(jar.claimed_link(where.worker)).st_mtime
            info["running_for"] = round(max(0.0, reading_now(jar) - since), 1)
        except OSError:
            pass
    return info


def _held_back(jar: Jar, path: Path) -> str | None:
    """Which placement rule keeps an unclaimed job from every node (``placement.held_back``).

    The job file and the node files are anyone's: what cannot be read or
    understood holds nothing back here (a worker rejects or fails the job
    with the reason when it claims it).
    """
    from .depend import read_head
    from .placement import held_back

    try:
        opts = jjdir.parse(read_head(path))
    except Exception:
        return None
    return held_back(jar, opts)


def _request_cancel(jar: Jar, name: str) -> Path:
    """Create ``cancel/NAME`` (never through a planted link); return its path."""
    request = jar.cancel_request(name)
    for attempt in (1, 2):
        try:
            os.close(os.open(request, files.CREATE, 0o666))
            break
        except FileExistsError:  # already requested (or something is there: it counts)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
            files.make_dir(jar.cancel)
    return request


def _cancel_one(name: str, jar: Jar, where: Location | None) -> str:
    """Cancel one job; say what happened.

    The request file comes first: a worker that claims the job while we
    move it sees the request and cancels it itself.  A queued job is then
    renamed into ``completed/`` (the rename decides between us and a worker)
    and only then recorded, so the record never claims a job that still runs.
    """
    if where is not None and where.state == states.LIMBO:
        raise JobJarError(f"job {name!r} is still being submitted (in limbo/)")
    if where is not None and where.state in states.LEFT:
        return "already finished"
    request = _request_cancel(jar, name)
    files.make_dir(jar.completed)  # a jar made by hand may lack it: the rename would fail
    for _ in range(RELOOK):
        if where is None or where.state in states.LEFT:
            break
        if where.state == states.RUNNING:
            return f"cancel requested (running on {where.worker})"
        record = records.never_ran(where.path, where.category, priority_of(name),
                                   states.CANCELLED, f"cancelled while {where.state}",
                                   time.time(), records.carried_over(jar.record(name)))
        try:
            os.rename(where.path, jar.completed / name)
        except FileNotFoundError:  # claimed or released just now: look again
            where = _locate(name, jar)
            continue
        records.write(jar.record(name), record)
        files.unlink(request)
        return "cancelled"
    else:
        return "cancel requested"
    # It finished before anyone saw the request: a stale request would
    # cancel the job at once if it were ever resubmitted.
    files.unlink(request)
    return "already finished"


def _owned_by(path: Path, uid: int) -> bool:
    try:
        return os.lstat(path).st_uid == uid
    except OSError:
        return False


def jobs_in_jar(jar: Jar) -> list[Location]:
    """Every job still in the jar: waiting, unclaimed or running."""
    found = [Location(state, path, category)
             for state in states.IN_JAR if state != states.RUNNING
             for category, path in jobs_in(jar.state_dir(state))]
    for worker, path in running_jobs(jar).values():
        category = held_category(jar.worker_dir(worker), path)
        found.append(Location(states.RUNNING, path, category, worker))
    return found


def cancel_job(*names: str, category: str | None = None, mine: bool = False,
               batch: str | None = None, id: str | None = None,
               jar: Jar | None = None) -> list[tuple[str, str]]:
    """Cancel jobs by name, every job of a category, or every job of yours.

    Returns ``(name, what happened)`` pairs: ``cancelled`` (it left the jar
    at once), ``cancel requested (running on WORKER)`` (its worker, on
    whatever node, kills it within about a second and records it
    ``cancelled``) or ``already finished``.  "Yours" means job files owned
    by the calling user, which is who submitted them.  An unknown name is an
    error, raised before anything is cancelled.  Names may also come as
    lists, such as the one ``submit_job(array=...)`` returns, or as unique
    prefixes; ``batch`` adds every job of a batch, ``id`` every job still
    in the jar submitted with that identifier (``find.select``).
    """
    jar = jar or Jar.from_config()
    if not names and category is None and not mine and batch is None and id is None:
        raise JobJarError("name the jobs to cancel, or give a category, a batch, -i or --mine")
    names = select(_flat(names), jar, batch, id, finished=False)
    if category is not None:
        check_category(category)
    targets = {n: _find(n, jar) for n in names}
    if category is not None or mine:
        uid = os.getuid()
        for where in jobs_in_jar(jar):
            if category is not None and where.category != category:
                continue
            if mine and not _owned_by(where.path, uid):
                continue
            if files.is_real_dir(where.path):  # not a job: a worker sets it aside
                continue
            targets.setdefault(where.path.name, where)
    return [(name, _cancel_one(name, jar, where)) for name, where in targets.items()]


def _resubmittable(name: str, jar: Jar) -> tuple[Location, dict, str | None]:
    """Check that job ``name`` can run again; return where it is, its record, its category.

    The category comes from the record, which is somebody's file: it is
    checked like one typed on the command line, so ``../../x`` cannot move
    the job out of the jar.
    """
    where = _find(name, jar)
    if where.state == states.REJECTED:
        raise JobJarError(f"job {name!r} was rejected (not a runnable job file) and cannot be "
                          "resubmitted: fix the file and submit it again")
    if where.state != states.COMPLETED:
        raise JobJarError(f"job {name!r} has not finished (it is {where.state})")
    if where.path is None:
        raise JobJarError(f"job {name!r} has left the jar and its file is gone: "
                          "it cannot be resubmitted")
    record = records.read(jar.record(name))
    try:
        category = check_category(record.get("category")) if record else None
    except JobJarError as exc:
        raise JobJarError(f"job {name!r}: its record has a bad category: {exc}") from None
    try:
        with open(where.path, "rb") as src:
            own = jjdir.parse(src.read(jjdir.HEAD_BYTES))
    except (OSError, jjdir.DirectiveError):
        own = jjdir.Directives()  # the worker will fail it with the reason
    if name in own.dependencies:
        raise JobJarError(f"job {name!r} depends on itself (#JJ --after): it would wait "
                          "forever; it cannot be resubmitted")
    return where, record or records.blank(name, category, priority_of(name)), category


#: The statuses ``resubmit_job(failed=True)`` runs again (not ``cancelled``: someone chose that).
FAILED_AGAIN = (states.FAILED, states.TIMED_OUT, states.DEPENDENCY_FAILED, states.POISONED)


def resubmit_job(*names: str, batch: str | None = None, id: str | None = None,
                 failed: bool = False, jar: Jar | None = None) -> list[str]:
    """Put finished jobs back into their jar, each as a new attempt; return their names.

    The record is rewritten as ``retrying`` before the job moves, so that
    recovery and ``wait`` never take a job back in the jar for a finished
    one; the worker then numbers the attempt and keeps the history.  Every
    job is checked before any moves.  Names may be unique prefixes;
    ``batch`` and ``id`` add a batch's jobs and an identifier's
    (``find.select``).  With ``failed``, only the chosen jobs that ended
    ``FAILED_AGAIN`` (and whose file is still in ``completed/``) run again:
    GNU Parallel's ``--retry-failed``.
    """
    jar = jar or Jar.from_config()
    if not names and batch is None and id is None:
        raise JobJarError("name the jobs to resubmit, or give a batch or -i")
    chosen = select(_flat(names), jar, batch, id)
    if failed:
        chosen = [name for name in chosen if _failed(name, jar)]
    found = [(name, *_resubmittable(name, jar)) for name in chosen]
    done = []
    for name, where, record, category in found:
        files.unlink(jar.cancel_request(name))  # an old request must not cancel the new attempt
        record.update(name=name, category=category, status=states.PENDING, reason="resubmitted")
        records.write(jar.record(name), record)
        target = jar.queue_dir(category) / name
        try:
            files.make_dir(target.parent)
            os.rename(where.path, target)
        except FileNotFoundError:
            raise JobJarError(f"job {name!r} moved while it was being resubmitted") from None
        done.append(name)
    return done


def _failed(name: str, jar: Jar) -> bool:
    """Whether job ``name`` ended in ``FAILED_AGAIN`` and its file waits in ``completed/``."""
    record = _final_record(name, jar)
    return (record is not None and record.get("status") in FAILED_AGAIN
            and os.path.lexists(jar.completed / name))


def _left_jar(jar: Jar, name: str) -> dict | None:
    """The record of a job that has left the jar, or ``None`` while it is in it.

    A job in ``completed/`` whose record is not final yet is still being
    cancelled (its request is there until the record is) or resubmitted
    (``retrying``): wait for it to settle.  A final record of a job whose
    file is nowhere (it deleted itself) also means it has left.
    """
    in_left = any(os.path.lexists(jar.state_dir(state) / name) for state in states.LEFT)
    record = records.read(jar.record(name))
    status = record.get("status") if record else None
    if status in records.FINAL:
        if in_left or _locate(name, jar) is None:
            return record
        return None
    if not in_left or status == records.PENDING or os.path.lexists(jar.cancel_request(name)):
        return None
    if record is None:  # a canceller may have written it and dropped its request just now
        record = records.read(jar.record(name))
    return record or {"name": name, "status": None}  # left the jar without a record


def exit_status(*found: dict) -> int:
    """The exit status a shell should give for these jobs' records: the highest of theirs.

    A job's own status is as a shell's: 0 if it succeeded, its exit code,
    or 128+N when it was killed by signal N (also by its timeout or a
    cancel: the signal the worker sent).  A job that did not succeed and has
    neither (cancelled or timed out before it ran, a failed dependency,
    rejected, poisoned, no record), or whose exit code is 0 all the same
    (it caught the SIGTERM of its timeout), gives 1.  A record is somebody's
    file: a number that is not a plausible one counts as none.
    """
    worst = 0
    for record in found:
        status = 0 if record.get("status") == states.SUCCEEDED else 1
        code, signal = record.get("exit_code"), record.get("signal")
        if status and _small(signal, 1, 127):
            status = 128 + signal
        elif status and _small(code, 1, 255):
            status = code
        worst = max(worst, status)
    return worst


def _small(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def progress_line(done: int, total: int, failed: int, running: int, elapsed: float) -> str:
    """One frame of the progress bar (starts with a carriage return)."""
    width = 30
    filled = width * done // total if total else width
    eta = elapsed / done * (total - done) if done else None
    left = f", ~{_clock(eta)} left" if eta is not None and done < total else ""
    return (f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} done, {failed} failed, "
            f"{running} running, {_clock(elapsed)} elapsed{left}   ")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _known(name: str, jar: Jar) -> bool:
    try:
        _find(name, jar)
        return True
    except JobJarError:
        return False


def wait(names: list[str] | None = None, timeout: float | None = None, progress: bool = False,
         jar: Jar | None = None, batch: str | None = None, id: str | None = None) -> list[dict]:
    """Block until the jobs have left the jar; return their records, in order.

    ``names`` is a list of names (or one name).  Without names, waits for
    every job queued, waiting or running now (jobs submitted later are not
    waited for).  A name no job had when the wait started is not waited
    for: its record is ``{"name": ..., "status": None, "reason": UNKNOWN}``.
    The jar is polled, quickly at first and then once a second.  With
    ``progress`` a live bar goes to standard error.  Raises ``WaitTimeout``
    after ``timeout`` seconds.  Names may be unique prefixes; ``batch`` and
    ``id`` add a batch's jobs and an identifier's (``find.select``): an
    unknown batch or identifier raises ``JobJarError``.
    """
    jar = jar or Jar.from_config()
    if batch is not None or id is not None:
        names = _flat(names or [])
    if names is not None:  # [] waits for nothing, None for all
        names = select(_flat(names), jar, batch, id)
    if names is not None:
        order = list(dict.fromkeys(names))
    else:
        order = list(dict.fromkeys(where.path.name for where in jobs_in_jar(jar)))
    found = {} if names is None else {name: {"name": name, "status": None, "reason": UNKNOWN}
                                      for name in order if not _known(name, jar)}
    pending = [name for name in order if name not in found]
    start = time.monotonic()
    interval = 0.02
    while True:
        still = []
        for name in pending:
            record = _left_jar(jar, name)
            if record is None:
                still.append(name)
            else:
                found[name] = record
        pending = still
        elapsed = time.monotonic() - start
        if progress:
            failed = sum(r.get("status") != states.SUCCEEDED for r in found.values())
            running = len(set(pending) & set(running_jobs(jar))) if pending else 0
            sys.stderr.write(progress_line(len(found), len(order), failed, running, elapsed))
            sys.stderr.flush()
        if not pending:
            break
        if timeout is not None and elapsed >= timeout:
            if progress:
                sys.stderr.write("\n")
            raise WaitTimeout(f"{len(pending)} of {len(order)} jobs still in the jar after "
                              f"{timeout:g} s")
        pause = interval if timeout is None else min(interval, max(0.0, timeout - elapsed))
        time.sleep(pause)
        interval = min(interval * 1.5, MAX_POLL)
    if progress:
        sys.stderr.write("\n")
    return [found[name] for name in order]
