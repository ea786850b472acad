"""A hostile neighbour: a second user keeps dropping garbage into the jar while jobs run.

The team set-up of ``docs/security.md``: two real users, ``ann`` and ``bob``,
share a group-writable jar.  Two workers run as ``ann``.  For a bounded time
(about 25 s, times ``JJ_TEST_SCALE``) ``bob``, a separate process with his
own uid, drops garbage into every directory of the jar, round after round:
malformed job files and directives (``#JJ --retries --5``), forged records
with wrong types, forged worker directories and ``info.yaml`` files, links
to files outside the jar (in ``unclaimed/``, at the workers' spare output and
scratch names, at the predictable temporary names of his own jobs' records,
as worker directories and ``claimed/`` entries), a live worker's
``info.yaml`` replaced by a forged one, directories where files belong,
FIFOs, unreadable files and directories, and names with control
characters.  Meanwhile ``ann`` submits a few hundred real jobs, by hand and
with ``submit_job``, and runs ``system_status``, ``recover_jobs``,
``check_workers --dry-run`` and ``job_info`` as cron and an operator would.

``bob`` never uses the documented controls (cancel requests for real jobs,
``STOP``/``PAUSE`` files) nor the names of real jobs: whoever may write those
directories is entitled to use them (see the threat table in
``docs/security.md``).

Afterwards every real job ran exactly once and printed its own output, no
worker died, no command printed a traceback or a raw control character, no
job ``bob`` planted outside the queues ran, and a tree of sentinel files
outside the jar (``ann``'s, whose rights the workers have) is unchanged,
contents, modes and modification times.  All problems are collected and
reported together, so one run says everything that is still wrong
(``JJ_SOAK_SKIP=fifos,real_info`` leaves kinds of garbage out, to look for
the next problem while one is being fixed).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections import Counter
from pathlib import Path

from conftest import pid_alive

SCALE = float(os.environ.get("JJ_TEST_SCALE", "1") or 1)
SOAK_SECONDS = max(5.0, 25.0 * SCALE)
REAL_JOBS = max(60, int(300 * SCALE))
CATEGORY = "A"
NODE = os.uname().nodename.split(".")[0] or "localhost"

#: Characters a command must never print raw (new line and tab are fine).
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- the sentinel tree: ann's files outside the jar --------------------------------------------


def make_sentinel(root: Path, uid: int, gid: int, laundered: Path) -> Path:
    """Files of ``ann`` outside the jar, shaped like what an attacker would aim at.

    It looks like a worker directory (``info.yaml``, ``job/A/victim.0``,
    ``scratch/``) and a queue (``jobs/``), and holds a ``.bashrc``; its
    executables would log to ``laundered`` if anything ever ran them.
    """
    top = root / "outside"
    run = f'#!/bin/sh\necho "$0" >> "{laundered}"\n'
    content = {
        ".bashrc": "export PATH=$HOME/bin:$PATH\n",
        "thesis.tex": "\\documentclass{article}\n" * 50,
        "scratch/results.dat": "1 2 3\n",
        "job/A/victim.0": run,
        "job/victim.0": run,
        "jobs/evil.0": run,
        "run.sh": run,
        "info.yaml": f'worker: "{NODE}.1"\npid: 1\n',
        "heartbeat": "",
        "output/x.out": "keep\n",
    }
    for rel, text in content.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if text.startswith("#!") else 0o644)
    old = time.time() - 3600
    for path in [top, *top.rglob("*")]:
        os.chown(path, uid, gid)
        if path.is_file():
            os.utime(path, (old, old))
    return top


def tree_digest(top: Path) -> dict[str, tuple]:
    """Every entry below ``top`` (links not followed): type, mode, size, mtime, content hash."""
    digest = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            entry: tuple = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as src:
                    entry += (info.st_size, info.st_mtime_ns,
                              hashlib.sha256(src.read()).hexdigest())
            elif stat.S_ISLNK(info.st_mode):
                entry += (os.readlink(path),)
            digest[os.path.relpath(path, top)] = entry
    return digest


# -- the neighbour -----------------------------------------------------------------------------


class Neighbour:
    """What ``bob`` does, round after round (run in a child process with his uid).

    Every step may fail (a worker moved the file, a directory is gone): the
    neighbour shrugs and carries on.  Names start with ``zz`` and are never
    the name of a real job.
    """

    def __init__(self, home: Path, outside: Path, laundered: Path, workers: list[str],
                 stop: Path, deadline: float) -> None:
        self.home, self.outside, self.laundered = home, outside, laundered
        self.workers, self.stop, self.deadline = workers, stop, deadline
        self.round = 0
        self.dead_pids = self._dead_pids()

    @staticmethod
    def _dead_pids() -> list[int]:
        try:
            pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        except (OSError, ValueError):
            pid_max = 32768
        return [p for p in range(pid_max - 1, pid_max - 400, -7) if not pid_alive(p)][:20]

    def run(self) -> None:
        while not self.stop.exists() and time.monotonic() < self.deadline:
            self.round += 1
            for step in self.steps():
                try:
                    step(f"zz{self.round:04d}{os.urandom(2).hex()}")
                except OSError:
                    pass
            time.sleep(0.25)

    def steps(self) -> list:
        """The kinds of garbage, less those named in ``JJ_SOAK_SKIP`` (comma-separated).

        Skipping is for finding the next problem while an earlier one is
        still being fixed (``JJ_SOAK_SKIP=fifos`` when a FIFO hangs every
        worker); the suite runs them all.
        """
        skip = set(os.environ.get("JJ_SOAK_SKIP", "").split(","))
        return [getattr(self, name) for name in (
            "queues", "fifos", "waiting", "limbo", "claimed", "claimed_real", "workers_dir",
            "real_workers", "real_info", "results", "output", "finished", "cancel", "top")
            if name not in skip]

    # helpers ---------------------------------------------------------------------------------

    def _try(self, action, *args) -> None:
        try:
            action(*args)
        except OSError:
            pass

    def _file(self, path: Path, data: bytes | str, mode: int = 0o755,
              age: float | None = None) -> None:
        """Write a file (via a dot-name, then rename, as a careful submitter would)."""
        try:
            tmp = path.parent / f".{path.name[:30]}.{os.getpid()}.part"
            with open(tmp, "wb") as dst:
                dst.write(data.encode() if isinstance(data, str) else data)
            os.chmod(tmp, mode)
            if age:
                os.utime(tmp, (time.time() - age,) * 2)
            os.rename(tmp, path)
        except OSError:
            pass

    def _link(self, target: Path | str, path: Path, replace: bool = False) -> None:
        """A symbolic link at ``path``; with ``replace``, renamed over whatever is there."""
        try:
            if replace:
                tmp = path.parent / f".zzlink{os.urandom(3).hex()}"
                os.symlink(target, tmp)
                try:
                    os.rename(tmp, path)
                except OSError:
                    os.unlink(tmp)
            else:
                os.symlink(target, path)
        except OSError:
            pass

    def _dir(self, path: Path, mode: int = 0o2775, inside: str | None = None) -> None:
        try:
            os.mkdir(path)
            if inside:
                (path / inside).write_text("#!/bin/sh\nexit 0\n")
            os.chmod(path, mode)
        except OSError:
            pass

    def _script(self, *directives: str, body: str = "exit 0\n") -> str:
        return "#!/bin/sh\n" + "".join(f"#JJ {d}\n" for d in directives) + body

    # the jar's directories -------------------------------------------------------------------

    def queues(self, tag: str) -> None:
        """Malformed jobs, links out of the jar, non-files, unreadable things, odd names."""
        for queue in (self.home / "unclaimed", self.home / "unclaimed" / CATEGORY):
            bad = {
                "retries": self._script("--retries --5"),
                "super": self._script("--retries \u00b2"),
                "huge": self._script("--timeout 1e300 --retries 99999999999"),
                "quote": self._script("--output 'unbalanced"),
                "escape": self._script("--output ../../escaped"),
                "unknown": self._script("--frobnicate 3"),
                "nul": "#!/bin/sh\n#JJ --after a\x00b\nexit 0\n",
                "fails": self._script(body="exit 3\n"),
            }
            for kind, text in bad.items():
                self._file(queue / f"{tag}-{kind}.{self.round % 5}", text)
            self._file(queue / f"{tag}-noexec.0", self._script(), mode=0o644)
            self._file(queue / f"{tag}-unreadable.0", self._script(), mode=0o000)
            self._file(queue / f"{tag}-empty.0", b"")
            self._file(queue / f"{tag}-binary.0", os.urandom(300))
            self._file(queue / f"{tag}-ctl\x1b[2J\x1b]0;owned\x07\n.0", self._script())
            self._file(queue / (tag + "-\udcff\udcfe.0"), self._script())
            self._file(queue / f"{tag}-prio.99999999999999999999", self._script())
            self._link(self.outside / "run.sh", queue / f"{tag}-link.9")
            self._link(self.outside / "jobs", queue / f"{tag}-dirlink.9")
            self._link("../../../outside/run.sh", queue / f"{tag}-rellink.9")
            self._dir(queue / f"{tag}-dir.9", inside="x.0")
        unclaimed = self.home / "unclaimed"
        self._link(self.outside / "jobs", unclaimed / NODE)  # the node's own category
        self._link(self.outside / "jobs", unclaimed / f"{tag}cat")
        if self.round % 4 == 0:
            self._dir(unclaimed / f"{tag}locked", mode=0o700, inside="x.0")

    def waiting(self, tag: str) -> None:
        if self.round % 3:
            return  # waiting jobs are read after every job: keep them few
        waiting = self.home / "waiting"
        self._file(waiting / f"{tag}-retries.0", self._script("--retries --5", "--after a.0"))
        self._file(waiting / f"{tag}-after.0", self._script("--after ../../etc/passwd"))
        self._file(waiting / f"{tag}-forever.0", self._script(f"--after {tag}-never.0"))
        self._file(waiting / f"{tag}-self.0", self._script(f"--after {tag}-self.0"))
        self._file(waiting / f"{tag}-unreadable.0", self._script("--after x.0"), mode=0o000)
        self._file(waiting / f"{tag}\x1b[31m.0", self._script("--after \x1b[2J"))
        self._link(self.outside / "run.sh", waiting / f"{tag}-link.0")
        self._dir(waiting / f"{tag}-dir", inside="y.0")
        self._dir(waiting / f"{tag}-locked", mode=0o700, inside="z.0")

    def fifos(self, tag: str) -> None:
        """FIFOs where job files belong: opening one to read it blocks forever."""
        for where in ("unclaimed", f"unclaimed/{CATEGORY}", "waiting", "limbo"):
            self._try(os.mkfifo, self.home / where / f"{tag}-fifo.9")

    def limbo(self, tag: str) -> None:
        limbo, day2 = self.home / "limbo", 2 * 24 * 3600
        self._file(limbo / f"{tag}-old.0", self._script(), age=day2)
        self._file(limbo / f"{tag}-\n-old.0", b"\xff\xfe", age=day2)
        self._link(self.outside / "thesis.tex", limbo / f"{tag}-link.0")
        self._dir(limbo / f"{tag}-dir", inside="a.0")
        self._file(limbo / f"{tag}-young.0", self._script())

    def claimed(self, tag: str) -> None:
        claimed = self.home / "claimed"
        self._link(self.outside, claimed / f"{tag}.1")
        self._link(self.outside / "thesis.tex", claimed / f"{tag}.2")
        self._link(f"../workers/{NODE}.{self.dead_pids[0]}/job/{CATEGORY}/x.0",
                   claimed / f"{NODE}.{self.dead_pids[0]}")
        self._link("../nowhere", claimed / f"{tag}.3")
        self._file(claimed / f"{tag}.4", "not a link")
        self._dir(claimed / f"{tag}.5", inside="x")

    def claimed_real(self, tag: str) -> None:
        """Directories at the real workers' link names (absent between two jobs)."""
        for worker in self.workers:
            self._dir(self.home / "claimed" / worker)

    def workers_dir(self, tag: str) -> None:
        """Forged worker directories: dead pids of this node, wrong types, links out."""
        home = self.home / "workers"
        pids = self.dead_pids
        pid = pids[self.round % len(pids)]
        forged = home / f"{NODE}.{pid}"
        self._dir(forged)
        self._file(forged / "info.yaml", f'worker: "{NODE}.{pid}"\nnode: 5\npid: "x"\n'
                   'create_time: "x"\nstart_ticks: [1]\nheartbeat: {"a": 1}\ncategories: 7\n'
                   'started: 1e999\nuser: null\n', mode=0o644)
        self._file(forged / "heartbeat", "", mode=0o644)
        job = forged / "job" / CATEGORY
        try:
            job.mkdir(parents=True)
        except OSError:
            pass
        run = f'#!/bin/sh\necho "$0" >> "{self.laundered}"\n'
        self._file(job / f"{tag}-launder.0", run)
        self._file(forged / "job" / f"{tag}-launder.0", run)
        self._dir(forged / "scratch", inside="left")
        self._link(self.outside, home / f"{NODE}.{pids[1]}")  # recover_jobs, stop_worker all
        self._link(self.outside / "scratch", home / f"{NODE}.{pids[2]}" / "scratch")
        other = home / f"{NODE}.{pids[3]}"
        self._dir(other)
        self._dir(other / "info.yaml")
        self._link(self.outside / "job", other / "job")
        self._link(self.outside / "scratch", other / "scratch")
        binary = home / f"othernode.{pid}"
        self._dir(binary)
        self._file(binary / "info.yaml", os.urandom(200), mode=0o644)
        self._dir(home / f"{tag}-notes.old")
        self._file(home / f"{tag}.7", "a file named like a worker")
        self._file(home / f".{tag}.tmp", "old temporary", age=2 * 24 * 3600)
        self._link(self.outside / "thesis.tex", home / f".{tag}-link.tmp")

    def real_workers(self, tag: str) -> None:
        """Inside the real workers' directories (group-writable): links at their names."""
        for worker in self.workers:
            wdir = self.home / "workers" / worker
            self._link(self.outside / "scratch", wdir / ".scratch-spare", replace=True)
            self._link(self.outside / "heartbeat", wdir / "heartbeat", replace=True)
            self._link(self.outside / "scratch", wdir / "scratch")  # absent between jobs
            self._link(self.outside / "thesis.tex", wdir / f"{tag}-link")
            self._file(wdir / f"{tag}\x1b[2J", "junk", mode=0o644)

    def real_info(self, tag: str) -> None:
        """A live worker's ``info.yaml`` replaced: a wrong start time, or wrong types.

        Its process still runs: recovery must not take it for dead (its
        running job would run twice).
        """
        for i, worker in enumerate(self.workers):
            pid = worker.rsplit(".", 1)[1]
            forged = (f'worker: "{worker}"\nnode: "{NODE}"\npid: {pid}\ncreate_time: 1.5\n'
                      'start_ticks: 1\nheartbeat: 0.5\n' if (self.round + i) % 2 else
                      'pid: "x"\ncreate_time: "x"\nstart_ticks: [1]\n')
            self._file(self.home / "workers" / worker / "info.yaml", forged, mode=0o644)

    def results(self, tag: str) -> None:
        """Forged records of his own garbage jobs, and links at their temporary names."""
        results = self.home / "results"
        forged = ('name: "x"\nstatus: "retrying"\nrecoveries: "x"\nattempt: -5\n'
                  'attempts: "nope"\nsubmitted: 5\nworker: [1]\nretries: 1e300\n')
        for kind in ("retries", "fails", "noexec", "empty", "binary"):
            name = f"{tag}-{kind}.{self.round % 5}" if kind in ("retries", "fails") \
                else f"{tag}-{kind}.0"
            self._file(results / f"{name}.yaml", forged, mode=0o644)
            for worker in self.workers:  # the old predictable temporary name
                pid = worker.rsplit(".", 1)[1]
                temporary = f".{(name + '.yaml')[:40]}.{NODE[:40]}.{pid}.tmp"
                self._link(self.outside / ".bashrc", results / temporary)
        self._dir(results / f"{tag}-super.{self.round % 5}.yaml", inside="x")
        self._file(results / f"{tag}-garbage.yaml", b"\xff\x00: [\n", mode=0o644)
        self._link(self.outside / "thesis.tex", results / f"{tag}-link.yaml")

    def output(self, tag: str) -> None:
        """Links at the workers' spare output names, directories at output names."""
        output = self.home / "output"
        for worker in self.workers:
            self._link(self.outside / ".bashrc", output / f".spare.{worker}.out", replace=True)
            self._link(self.outside / "thesis.tex", output / f".spare.{worker}.err",
                       replace=True)
        for kind in ("fails", "retries"):
            self._dir(output / f"{tag}-{kind}.{self.round % 5}.out", inside="x")
        self._link(self.outside / ".bashrc", output / f"{tag}-super.{self.round % 5}.out")

    def finished(self, tag: str) -> None:
        for where in ("completed", "rejected"):
            directory = self.home / where
            self._file(directory / f"{tag}-junk\x1b[2J.0", "junk")
            self._link(self.outside / "thesis.tex", directory / f"{tag}-link.0")
            self._dir(directory / f"{tag}-dir.0", inside="x")

    def cancel(self, tag: str) -> None:
        """Not requests for real jobs: directories, links and odd names."""
        cancel = self.home / "cancel"
        self._dir(cancel / f"{tag}-dir", inside="x")
        self._link(self.outside / "thesis.tex", cancel / f"{tag}-link")
        self._file(cancel / f"{tag}\x1b[2J\n", "")

    def top(self, tag: str) -> None:
        self._file(self.home / f"{tag}-junk", "junk", mode=0o644)
        self._link(self.outside, self.home / f"{tag}-out")


# -- ann ---------------------------------------------------------------------------------------


def real_job(log: Path) -> str:
    """Logs its name (exactly-once), prints it (its output), leaves a file in its scratch.

    One in ten takes a second, so that recovery often runs while a job does.
    """
    return (f'#!/bin/sh\necho "$JJ_JOB_NAME" >> "{log}"\necho "$JJ_JOB_NAME"\n'
            'echo "$JJ_JOB_NAME" > here\n'
            'case "$JJ_JOB_NAME" in *0.?) sleep 1;; esac\n')


def submit_by_hand(home: Path, names: list[str], body: str) -> None:
    """``ann`` submits as the guide shows: write in ``limbo/``, then rename (as her)."""
    for i, name in enumerate(names):
        src = home / "limbo" / name
        with open(src, "w") as dst:
            dst.write(body)
        os.chmod(src, 0o755)
        queue = home / "unclaimed" / CATEGORY if i % 3 == 0 else home / "unclaimed"
        os.makedirs(queue, exist_ok=True)
        os.rename(src, queue / name)


class Watch:
    """Commands as an operator and cron would run them; every problem is noted."""

    def __init__(self, team) -> None:
        self.team, self.problems, self.runs = team, [], Counter()

    def command(self, who: str, *args: str, ok=(0,)) -> str:
        result = self.team.run(who, *args, timeout=120)
        self.runs[args[0]] += 1
        shown = " ".join(args)
        text = result.stdout + result.stderr
        if "Traceback" in text:
            tail = [line for line in text.splitlines() if line.strip()][-3:]
            self.problems.append(f"{shown} (as {who}) printed a traceback: {tail}")
        elif result.returncode not in ok:
            self.problems.append(f"{shown} (as {who}) exited {result.returncode}: "
                                 f"{result.stderr.strip()[-300:]!r}")
        raw = RAW_CONTROL.search(text)
        if raw:
            near = text[max(0, raw.start() - 60):raw.end()]
            self.problems.append(f"{shown} (as {who}) printed a raw control character "
                                 f"{raw.group()!r}: ...{near!r}")
        return result.stdout

    def round(self, names: list[str]) -> None:
        self.command("ann", "system_status")
        self.command("bob", "system_status")
        self.command("ann", "recover_jobs")
        self.command("ann", "check_workers", "--dry-run")
        for name in names[-3:]:
            self.command("ann", "job_info", name, ok=(0, 1))
        self.command("bob", "job_info", "zz-not-a-job.0", ok=(1, 2))


def test_hostile_neighbour_soak(team):
    root = team.root
    log, stop = root / "runs.log", root / "neighbour.stop"
    log.touch()
    os.chown(log, team.uid["ann"], team.gid)
    drop = root / "drop"  # where a job bob planted outside the queues would log, as ann
    drop.mkdir()
    os.chown(drop, team.uid["ann"], team.gid)
    laundered = drop / "laundered.log"
    outside = make_sentinel(root, team.uid["ann"], team.gid, laundered)
    before = tree_digest(outside)

    result = team.run("ann", "check_workers", "--dry-run")
    assert result.returncode == 0, result.stderr
    workers = [team.start_worker("ann", CATEGORY) for _ in range(2)]
    pids = [int(w.rsplit(".", 1)[1]) for w in workers]
    watch = Watch(team)

    neighbour = Neighbour(team.home, outside, laundered, workers, stop,
                          time.monotonic() + SOAK_SECONDS + 60)
    child = os.fork()
    if child == 0:  # pragma: no cover - bob
        code = 1
        try:
            os.setgroups([team.gid])
            os.setgid(team.gid)
            os.setuid(team.uid["bob"])
            os.umask(0o002)
            neighbour.run()
            code = 0
        finally:
            os._exit(code)

    names: list[str] = []
    try:
        body = real_job(log)
        start = time.monotonic()
        deadline = start + SOAK_SECONDS
        batch = 0
        while time.monotonic() < deadline or len(names) < REAL_JOBS:
            # keep pace with the clock: all REAL_JOBS by about three quarters of the soak
            due = REAL_JOBS * min(1.0, (time.monotonic() - start) / (0.75 * SOAK_SECONDS))
            todo = min(max(1, int(due) - len(names)), REAL_JOBS - len(names))
            if todo > 0:
                fresh = [f"real-{len(names) + i:04d}.{(len(names) + i) % 3}"
                         for i in range(todo)]
                team.as_user("ann", submit_by_hand, team.home, fresh, body)
                names += fresh
            if batch % 4 == 0 and len(names) < REAL_JOBS + 20:
                name = watch.command("ann", "submit_job", "-i", "realcmd", "-c", CATEGORY,
                                     f'echo "$JJ_JOB_NAME" >> {log}; echo "$JJ_JOB_NAME"; '
                                     'echo "$JJ_JOB_NAME" > here').strip()
                if name:
                    names.append(name)
            watch.round(names)
            for i, (worker, pid) in enumerate(zip(workers, pids)):
                if pid > 0 and not pid_alive(pid):
                    watch.problems.append(f"worker {worker} died during the soak")
                    pids[i] = -1  # reported once
            batch += 1
            if time.monotonic() >= deadline and len(names) >= REAL_JOBS:
                break
    finally:
        stop.touch()
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the neighbour itself failed"

    problems = watch.problems
    if not settle(team.home, log, names):
        missing = sorted(set(names) - set(counted(log)))
        unfinished = [n for n in names if not completed(team.home, n)]
        problems.append(f"not every real job completed: {len(missing)} of {len(names)} never "
                        f"ran (e.g. {', '.join(missing[:3]) or '-'}), {len(unfinished)} are not "
                        f"in completed/ but in {where(team.home, unfinished)}; the workers: "
                        + "; ".join(stuck(team.home, w, p) for w, p in zip(workers, pids)))
    watch.round(names)
    for name in names[::max(1, len(names) // 10)]:
        watch.command("ann", "job_info", name)
    watch.command("bob", "system_status")

    for worker, pid in zip(workers, pids):
        if pid > 0 and not pid_alive(pid):
            problems.append(f"worker {worker} died")
    problems += check_runs(team.home, log, names)
    problems += check_reached(team.home)
    problems += check_worker_logs(team.home, workers)
    if laundered.exists():
        problems.append(f"jobs bob planted outside the queues ran as ann: "
                        f"{laundered.read_text().splitlines()[:5]}")
    after = tree_digest(outside)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        problems.append("the sentinel tree outside the jar changed: " + "; ".join(
            f"{k}: {before.get(k)} -> {after.get(k)}" for k in changed[:8]))
    assert not problems, f"{len(problems)} problem(s) in the hostile soak " \
        f"({len(names)} real jobs, {SOAK_SECONDS:.0f} s, commands {dict(watch.runs)}):\n" + \
        "\n".join(f"- {p}" for p in dedupe(problems))


def settle(home: Path, log: Path, names: list[str]) -> bool:
    """Wait until every real job ran and completed, as long as the workers make progress."""
    idle = 30.0 * max(1.0, SCALE)
    last, since = -1, time.monotonic()
    while time.monotonic() - since < idle:
        done = sum(1 for n in names if completed(home, n))
        if done == len(names) and set(counted(log)) >= set(names):
            return True
        if done != last:
            last, since = done, time.monotonic()
        time.sleep(0.5)
    return False


def where(home: Path, names: list[str]) -> str:
    """Where in the jar the first few of ``names`` are."""
    wanted, found = set(names[:5]), []
    for dirpath, dirnames, filenames in os.walk(home):
        found += [os.path.relpath(os.path.join(dirpath, n), home)
                  for n in dirnames + filenames if n in wanted]
    return ", ".join(found) or "nowhere"


def stuck(home: Path, worker: str, pid: int) -> str:
    """What a worker that stopped making progress is doing: its log, its job, its wait."""
    try:
        tail = (home / "workers" / worker / "log").read_text(errors="replace").splitlines()[-2:]
    except OSError as exc:
        tail = [str(exc)]
    held = [str(p.relative_to(home / "workers" / worker)) for p in
            (home / "workers" / worker / "job").rglob("*")] if pid > 0 else []
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        syscall = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except OSError:
        wchan = syscall = "gone"
    return f"{worker} holds {held}, waits in {wchan} (syscall {syscall}), log ends {tail}"


def counted(log: Path) -> Counter:
    return Counter(log.read_text().split())


def completed(home: Path, name: str) -> bool:
    return os.path.lexists(home / "completed" / name)


def check_runs(home: Path, log: Path, names: list[str]) -> list[str]:
    """Exactly once, succeeded, its own output, and nothing else ran under a real name."""
    from jobjar import records

    problems = []
    runs = counted(log)
    twice = {n: c for n, c in runs.items() if c > 1}
    if twice:
        some = dict(list(twice.items())[:5])
        problems.append(f"{len(twice)} real job(s) ran more than once: {some}")
    strangers = set(runs) - set(names)
    if strangers:
        problems.append(f"unknown names in the run log: {sorted(strangers)[:5]}")
    for name in names:
        record = records.read(home / "results" / f"{name}.yaml") or {}
        if record.get("status") != "succeeded":
            problems.append(f"a real job ended with status {record.get('status')!r}, "
                            f"reason {record.get('reason')!r} (e.g. {name})")
            continue
        out = record.get("stdout")
        where = Path(out) if isinstance(out, str) else None
        if where is not None and not where.is_absolute():
            where = home / "output" / where
        try:
            text = where.read_text() if where else None
        except OSError as exc:
            text = f"<{exc}>"
        if text != f"{name}\n":
            problems.append(f"a real job's output file is not its own output "
                            f"(e.g. {name}: {out!r} holds {text!r:.120})")
    return problems


def check_reached(home: Path) -> list[str]:
    """The garbage reached the workers (else the soak proved nothing)."""
    from jobjar import records

    reached = []
    for where in ("completed", "rejected"):
        try:
            names = [n for n in os.listdir(home / where) if n.startswith("zz")]
        except OSError:
            names = []
        reached += [n for n in names
                    if (records.read(home / "results" / f"{n}.yaml") or {}).get("status")]
    kinds = {n.split("-", 1)[-1].split(".")[0] for n in reached}
    if not {"noexec", "retries", "fails"} <= kinds:
        return [f"the neighbour's garbage hardly reached the workers (only {sorted(kinds)}): "
                "the soak proved little"]
    return []


def check_worker_logs(home: Path, workers: list[str]) -> list[str]:
    problems = []
    for worker in workers:
        try:
            text = (home / "workers" / worker / "log").read_text(errors="replace")
        except OSError as exc:
            problems.append(f"{worker}: no log ({exc})")
            continue
        if "Traceback" in text:
            at = text.index("Traceback")
            problems.append(f"{worker}'s log has a traceback: {text[at:at + 400]!r}")
        raw = RAW_CONTROL.search(text)
        if raw:
            problems.append(f"{worker}'s log has a raw control character: "
                            f"{text[max(0, raw.start() - 60):raw.end() + 10]!r}")
    return problems


def dedupe(problems: list[str]) -> list[str]:
    """The same problem seen many times is reported once, with a count.

    Problems that differ only in a name (``zz...`` garbage, ``real-...`` jobs,
    temporary directories) count as the same; the first one is shown.
    """
    def key(problem: str) -> str:
        return re.sub(r"zz\w+|real-\d+\.\d|\d{8}T\S+|jjteam-\w+|\(e\.g\..*|"
                      + re.escape(NODE) + r"\.\d+", "*", problem)

    seen = Counter(key(p) for p in problems)
    first = {}
    for problem in problems:
        first.setdefault(key(problem), problem)
    return [p if seen[k] == 1 else f"{p} (and {seen[k] - 1} more like it)"
            for k, p in first.items()]
