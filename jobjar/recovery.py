"""Recovery: put back the jobs that dead workers held, repair half-done moves.

``recover_worker`` repairs what one dead worker left; ``recover_jobs`` finds
every dead worker and every half-done move of the jar and repairs them.

What counts as dead:

* a worker of *this* node whose process is gone (or whose pid now belongs
  to another program: the recorded process identity tells them apart).
  Its job goes back only once no process of it remains: what still runs is
  ended first, and a job with a process that survives (or that we may not
  signal, or cannot see) is left in place and reported;
* with ``stale=SECONDS``, a worker of *any* node whose heartbeat is older
  than that, judged by the shared filesystem's clock.  A worker cut off by a
  network partition may still be running its job, so this gives
  at-least-once execution, not exactly-once: the one place where it is
  accepted, because a silent node cannot be asked.

A job is put back into a queue only if it comes from a real worker's
directory (the directory's owner wrote its ``info.yaml``, which names that
worker and pid) and its file's owner could have submitted it to that queue;
anything else found in ``workers/`` goes to ``rejected/`` with a record that
says why.  Worker directories that are links are never entered.

Besides the jobs of dead workers it repairs the other states a crash can
leave (see ``docs/protocol.md``): dangling ``claimed/`` links, limbo files
older than a day, stale temporary record files, and cancel requests whose
job has already left the jar.  Every repair is one rename whose loser simply
finds the file gone, so any number of copies may run at once, on any nodes,
and running it twice changes nothing the second time.
"""

from __future__ import annotations

import math
import os
import stat
import time
from pathlib import Path

from . import faults, files, records, states
from .access import may_submit
from .config import Config, load
from .layout import WORKER_EXITED, WORKER_INFO, WORKER_LOG, WORKER_SCRATCH, Jar, held_job
from .liveness import filesystem_now, heartbeat_age, is_alive_here, number, read_info
from .naming import priority_of, split_worker_name

#: Limbo files and temporary records older than this are abandoned.
ABANDONED = 24 * 3600.0
#: ``--stale`` never judges a worker before it missed this many heartbeats.
MIN_BEATS = 2
#: The longest recovery waits for a lost attempt's processes after SIGTERM,
#: whatever ``JJ_KILL_GRACE`` says (a huge or non-finite grace must not hang or crash it).
MAX_GRACE = 300.0
#: How long processes get to disappear after SIGKILL.
KILL_WAIT = 5.0


# -- one dead worker -----------------------------------------------------------


def recover_worker(jar: Jar, config: Config, worker: str, why: str,
                   local: bool = False) -> list[tuple[str, str]]:
    """Repair what dead worker ``worker`` left; return ``(job, action)`` pairs.

    A job it finished but had not moved goes to ``completed/``; a job it was
    running goes back where it came from (same category, same name), unless
    it has already been recovered ``JJ_MAX_RECOVERIES`` times: then it is
    recorded ``poisoned`` and moved to ``completed/``.  With ``local`` (a
    worker of this node), what still runs of its job is ended first; if any
    of it survives or cannot be seen, the job stays where it is (the next
    attempt must never run beside the lost one).  A job in a directory that
    is not a real worker's, or that its owner could not have queued, is
    rejected instead (see the module's docstring).
    """
    wdir = jar.worker_dir(worker)
    if not files.is_real_dir(wdir):
        return []  # a link (or nothing): never enter what the jar did not make
    done = []
    held = held_job(wdir)
    if held is not None and local:
        ended, left = _end_lost_attempt(jar, config, worker, held[1].name)
        if ended:
            done.append((held[1].name, f"ended {ended} process(es) of the lost attempt"))
        if left:
            done.append((held[1].name, f"left in place: {left}"))
            return done  # its processes may still use the scratch and output too
    if held is not None:
        category, path = held
        try:
            action = _return_job(jar, config, worker, category, path, why)
        except OSError as exc:  # someone's directory we may not change: report, go on
            action = f"cannot repair: {exc.strerror or exc}"
        if action:
            done.append((path.name, action))
    link = jar.claimed_link(worker)
    if os.path.islink(link):
        files.unlink(link)
    files.remove_tree(wdir / WORKER_SCRATCH)
    for spare in jar.hidden_outputs(worker):  # output of the lost attempt, if any
        files.unlink(spare)
    return done


def end_orphans(jar: Jar, config: Config, worker: str, job: str) -> int:
    """End what still runs of ``job`` after its worker on this node died; return how many."""
    return _end_lost_attempt(jar, config, worker, job)[0]


def _end_lost_attempt(jar: Jar, config: Config, worker: str, job: str) -> tuple[int, str]:
    """End the lost attempt's processes: ``(how many were signalled, what is left or "")``.

    A job runs in a session of its own, so a worker killed by SIGKILL leaves
    it running.  Its processes carry ``JJ_WORKER`` and ``JJ_JOB_NAME`` in
    their environment (the worker sets them for every job): they get
    SIGTERM, then SIGKILL after ``JJ_KILL_GRACE``.  Processes that earlier
    jobs left behind on purpose (another name) and living workers (which may
    have inherited the variables from a job that started them) are spared.
    A process of the dead worker's user whose environment we may not read
    might be the job: then nothing can be known dead, and the second value
    says so, as it does for a process that survives SIGKILL or refuses our
    signals (EPERM).
    """
    import psutil

    victims, unseen = _lost_processes(jar, config, worker, job)
    left = victims
    grace = _grace(config.kill_grace)
    for sig, wait in (("terminate", grace), ("kill", KILL_WAIT)):
        for proc in left:
            try:
                getattr(proc, sig)()
            except psutil.Error:  # gone, or EPERM: then it stays in ``left``
                pass
        left = _still_running(left, wait)
        if not left:
            break
    problems = []
    if left:
        problems.append(f"{len(left)} process(es) of the lost attempt survived SIGKILL or "
                        "refused our signals (pid " + ", ".join(str(p.pid) for p in left) + ")")
    if unseen:
        problems.append(f"{unseen} process(es) of its user could not be inspected "
                        "(run recover_jobs as that user)")
    return len(victims), "; ".join(problems)


def _lost_processes(jar: Jar, config: Config, worker: str, job: str) -> tuple[list, int]:
    """The processes of ``job`` run by dead ``worker``, and how many could not be inspected."""
    import psutil

    spared = {os.getpid()}
    for name in jar.workers():
        try:
            node, pid = split_worker_name(name)
        except ValueError:
            continue
        if node == config.node and name != worker:
            spared.add(pid)
    owner = _owner(jar.worker_dir(worker))
    # Another user's environments are closed to us (root and the same user read them).
    blind = os.geteuid() not in (0, owner)
    victims, unseen = [], 0
    for proc in psutil.process_iter(["environ", "uids", "status"]):
        if proc.pid in spared or proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        env = proc.info.get("environ")
        if env is None:
            uids = proc.info.get("uids")
            if blind and uids is not None and owner in tuple(uids) and proc.is_running():
                unseen += 1
            continue
        if env.get("JJ_WORKER") == worker and env.get("JJ_JOB_NAME") == job:
            victims.append(proc)
    return victims, unseen


def _still_running(procs: list, timeout: float) -> list:
    """Wait up to ``timeout`` seconds for ``procs`` to end; return those still running.

    A zombie has ended (only its parent has not reaped it yet, and that
    parent may be an init that never does): it counts as gone.
    """
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        left = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(proc)
            except psutil.NoSuchProcess:
                continue
            except psutil.Error:
                left.append(proc)
        if not left or time.monotonic() >= deadline:
            return left
        procs = left
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))


def _grace(value: object) -> float:
    """``JJ_KILL_GRACE`` as a wait recovery can afford: finite, 0 to ``MAX_GRACE`` seconds."""
    grace = number(value)
    if grace is None or math.isnan(grace):
        return MAX_GRACE
    return min(max(grace, 0.0), MAX_GRACE)


def _owner(path: Path) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None


def _return_job(jar: Jar, config: Config, worker: str, category: str | None, path: Path,
                why: str) -> str | None:
    name = path.name
    prior = records.read(jar.record(name))
    prior = prior if isinstance(prior, dict) else {}
    mine = prior.get("worker") == worker
    status = prior.get("status")
    if mine and status in states.FINAL:  # ran to the end; only the move was lost
        target = jar.state_dir(states.final_state(status)) / name
        action = f"moved to {target.parent.name}/ (it had finished)"
        return action if _move(path, target) else None
    refusal = _refusal(jar, worker, category, path)
    if refusal is not None:
        return _reject(jar, category, path, refusal)
    if mine and status == states.PENDING:  # a retry whose move back was lost
        target = jar.queue_dir(category) / name
        return "put back for its next attempt" if _move(path, target) else None
    now = time.time()
    record = records.lost(path, category, priority_of(name), worker, why, prior, now)
    if record["recoveries"] > config.max_recoveries:
        record.update(status=states.POISONED, finished=records.utc_iso(now),
                      reason=f"its worker died {record['recoveries']} times while running it")
        target = jar.state_dir(states.final_state(states.POISONED)) / name
        action = "poisoned: moved to completed/"
    else:
        target = jar.queue_dir(category) / name
        action = "put back in " + (f"unclaimed/{category}/" if category else "unclaimed/")
    if not os.path.lexists(path):
        return None  # another recoverer was faster
    records.write(jar.record(name), record)
    faults.hit("recover-after-record")
    if not _move(path, target):
        return None
    if record["status"] == states.POISONED:
        _log_finish(jar, worker, name, states.POISONED)
    return action


def _log_finish(jar: Jar, worker: str, name: str, status: str) -> None:
    """Add ``finish NAME STATUS`` to the dead worker's log, as the worker would have.

    ``system_status`` learns how recent jobs ended from those lines (it reads
    no record per finished job), so a job poisoned by recovery shows there.
    Only an existing regular file is appended to, never through a link; a
    log we may not write is left as it is.
    """
    from .naming import printable

    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(jar.worker_dir(worker) / WORKER_LOG, flags)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            line = f"{records.utc_iso(time.time())} finish {printable(name)} {status}\n"
            os.write(fd, line.encode("utf-8", "surrogateescape"))
    except OSError:
        pass
    finally:
        os.close(fd)


def _move(path: Path, target: Path) -> bool:
    """One rename (creating the target's directory); False if another recoverer was faster."""
    try:
        files.rename_into(path, target)
    except FileNotFoundError:
        return False
    faults.hit("recover-after-move")
    return True


def _reject(jar: Jar, category: str | None, path: Path, reason: str) -> str | None:
    """Set a job found in ``workers/`` aside: a ``rejected`` record saying why, then the move."""
    if not os.path.lexists(path):
        return None
    record = records.never_ran(path, category, priority_of(path.name), states.REJECTED,
                               reason, time.time())
    records.write(jar.record(path.name), record)
    if not _move(path, jar.state_dir(states.REJECTED) / path.name):
        return None
    return f"moved to rejected/: {reason}"


# -- may this job go back into a queue? ------------------------------------------


def _refusal(jar: Jar, worker: str, category: str | None, path: Path) -> str | None:
    """Why the job at ``path`` must not go back into a queue (``None``: it may).

    Whoever can write ``workers/`` can make a directory that looks like a
    dead worker's, with a job in it for a category they may not submit to;
    putting it back would launder it into that queue.
    """
    fake = _not_a_worker(jar.worker_dir(worker), worker)
    if fake:
        return f"found in {worker}/, which is not a real worker's directory ({fake})"
    try:
        info = os.lstat(path)
    except OSError:
        return None  # gone: the move will find out
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return may_submit(info, jar.queue_dir(category), category)


def _not_a_worker(wdir: Path, worker: str) -> str | None:
    """Why ``wdir`` is not a real worker's directory, or ``None`` if it is."""
    try:
        dir_info = os.lstat(wdir)
        file_info = os.lstat(wdir / WORKER_INFO)
    except OSError:
        return "no info.yaml"
    if not stat.S_ISDIR(dir_info.st_mode) or not stat.S_ISREG(file_info.st_mode):
        return "info.yaml is not a file"
    if file_info.st_uid != dir_info.st_uid:
        return "its info.yaml was written by another user"
    described = read_info(wdir)
    try:
        _node, pid = split_worker_name(worker)
    except ValueError:
        return "not a worker's name"
    if described.get("worker") != worker or described.get("pid") != pid:
        return "its info.yaml describes another worker"
    return None


# -- the whole jar -------------------------------------------------------------


def dead_workers(jar: Jar, config: Config, stale: float | None) -> list[tuple[str, str]]:
    """Workers to recover: ``(name, why)``."""
    found = []
    now = filesystem_now(jar.worker_home) if stale is not None else 0.0
    for worker in jar.workers():
        alive = is_alive_here(jar, worker, config.node)
        if alive is False:
            found.append((worker, "its worker died"))
        elif alive is None and stale is not None and not _is_local(worker, config) and \
                not (jar.worker_dir(worker) / WORKER_EXITED).exists():
            age = heartbeat_age(jar, worker, now)
            if age is not None and age > max(stale, MIN_BEATS * _interval(jar, worker)):
                found.append((worker, f"its worker's heartbeat is {age:.0f} s old"))
    return found


def _is_local(worker: str, config: Config) -> bool:
    """A worker of this node: its process can be asked, so no heartbeat guesses."""
    try:
        return split_worker_name(worker)[0] == config.node
    except ValueError:
        return False


def _interval(jar: Jar, worker: str) -> float:
    """The heartbeat interval a worker announced in its ``info.yaml`` (default 30 s).

    A ``--stale`` shorter than a couple of intervals would take healthy
    workers for dead ones and put their running jobs back: it is raised.
    A forged interval counts as the default.
    """
    interval = number(read_info(jar.worker_dir(worker)).get("heartbeat"))
    return interval if interval is not None and 0 < interval < 10**6 else 30.0


def recover_jobs(stale: float | None = None, jar: Jar | None = None) -> list[dict]:
    """Repair the jar; return one ``{"job"/"path", "action"}`` entry per repair.

    Idempotent, and safe to run on several nodes at once: every repair is one
    rename, and whoever loses a race finds the file gone and moves on.
    """
    config = load()
    jar = jar or Jar.from_config(config)
    if stale is not None and not stale >= 0:
        from .errors import JobJarError

        raise JobJarError("--stale must be a non-negative number of seconds")
    done: list[dict] = []
    for worker, why in dead_workers(jar, config, stale):
        try:
            done += _recover_dead(jar, config, worker, why)
        except OSError as exc:  # one bad directory must not stop the others' repairs
            done.append({"path": f"{jar.worker_home.name}/{worker}",
                         "action": f"cannot repair: {exc.strerror or exc}"})
    done += _dangling_links(jar)
    done += _abandoned_limbo(jar)
    done += _old_temporaries(jar)
    done += _settled_cancels(jar)
    from .calls import recover as recover_calls  # Python calls of killed callers

    done += recover_calls(jar, config.node)
    return done


def _not_empty(path: Path) -> bool:
    """Is there anything in a scratch directory (or something other than a directory)?"""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.lexists(path)


def _recover_dead(jar: Jar, config: Config, worker: str, why: str) -> list[dict]:
    wdir = jar.worker_dir(worker)
    if not files.is_real_dir(wdir):
        return []
    scratch = wdir / WORKER_SCRATCH
    had_scratch = _not_empty(scratch)  # an idle worker keeps an empty scratch/
    if held_job(wdir) is None and not os.path.lexists(jar.claimed_link(worker)) \
            and not had_scratch:
        return []
    local = is_alive_here(jar, worker, config.node) is False
    done = [{"job": job, "worker": worker, "action": action}
            for job, action in recover_worker(jar, config, worker, why, local)]
    if had_scratch and not os.path.lexists(scratch):
        done.append({"path": f"{jar.worker_home.name}/{worker}/scratch",
                     "action": "removed a dead worker's scratch directory"})
    faults.hit("recover-after-worker")
    return done


def _dangling_links(jar: Jar) -> list[dict]:
    done = []
    try:
        entries = list(os.scandir(jar.claimed))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return done
    for entry in entries:
        if entry.is_symlink() and _target_gone(entry.path):
            if not files.unlink(entry.path):
                continue
            done.append({"path": f"claimed/{entry.name}", "action": "removed a dangling link"})
    return done


def _target_gone(link: str) -> bool:
    """Is a link's target known to be missing?

    Only "no such file" counts: a link that cannot be followed for another
    reason (sshfs refusing ``..`` targets with EPERM, ESTALE on NFS) may
    belong to a living worker and must be left alone.
    """
    try:
        os.stat(link)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _age(path: str, now: float) -> float:
    try:
        return now - os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _abandoned_limbo(jar: Jar) -> list[dict]:
    """Limbo files a submitter never renamed: set aside, never run (they may be partial)."""
    done = []
    now = filesystem_now(jar.limbo) if files.is_real_dir(jar.limbo) else time.time()
    try:
        entries = list(os.scandir(jar.limbo))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return done
    for entry in entries:
        if _age(entry.path, now) < ABANDONED:
            continue
        path = Path(entry.path)
        record = records.never_ran(
            path, None, priority_of(entry.name), states.REJECTED,
            "abandoned in limbo/ for over a day (its submitter never finished submitting it)",
            now)
        # The record first: a crash between the two steps then leaves the file in
        # limbo/, where the next run finds it again, never in rejected/ unexplained.
        files.make_dir(jar.results)
        records.write(jar.record(entry.name), record)
        faults.hit("recover-limbo")
        try:
            files.make_dir(jar.rejected)
            os.rename(entry.path, jar.state_dir(states.REJECTED) / entry.name)
        except FileNotFoundError:
            continue
        done.append({"job": entry.name, "action": "moved from limbo/ to rejected/"})
    return done


def _old_temporaries(jar: Jar) -> list[dict]:
    done = []
    now = time.time()
    for directory in (jar.results, jar.worker_home):
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp") \
                    and _age(entry.path, now) > ABANDONED:
                if not files.unlink(entry.path):
                    continue
                done.append({"path": str(Path(directory.name) / entry.name),
                             "action": "removed an abandoned temporary file"})
    return done


def _settled_cancels(jar: Jar) -> list[dict]:
    """Cancel requests whose job already left the jar: finish the record, drop the request."""
    done = []
    try:
        names = os.listdir(jar.cancel)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return done
    from .find import locate

    for name in names:
        try:
            where = locate(name, jar)
        except (ValueError, OSError):
            continue
        if where is not None and where.state not in states.LEFT:
            continue
        if where is not None and where.state == states.COMPLETED and records.read(
                jar.record(name)) is None:
            records.write(jar.record(name), records.never_ran(
                where.path, where.category, priority_of(name), states.CANCELLED,
                "cancelled while queued", time.time()))
            done.append({"job": name, "action": "wrote the missing cancelled record"})
        try:
            if not files.unlink(jar.cancel / name):
                continue
        except OSError:  # a directory (or a file we may not remove) is no request of ours
            continue
        done.append({"job": name, "action": "removed a settled cancel request"})
    return done
