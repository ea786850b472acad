#!/usr/bin/env python3
"""The Job Jar benchmark: one command, one table, appended to docs/performance.md.

Usage::

    python3 bench/run.py [--jobs N] [--workers W] [--quick] [--only SECTIONS] [--no-write]

It measures, in one run on this machine (every jar lives in a fresh
temporary directory that is removed afterwards):

1. throughput, in two forms, every tool's runs interleaved (5 rounds; 1 with
   --quick), medians and spreads: the *script* form runs the same one-line
   ``#!/bin/sh`` script per job through every tool; the *native* form runs
   each tool as its users do (``tsp touch X``, ``nq touch X`` with one queue
   directory per slot, ``parallel touch ::: ...``, ``jobjar.submit_job("touch
   X")``, one ``submit_job --from-file``, one ``submit_job`` process per job);
   ``xargs -P W`` is the floor of each.  N jobs that each ``touch`` their own
   file (every file is checked) through W workers or slots, from the first
   submission to the last completion; a missing peer is skipped and named;
2. depth: the per-job cost of claiming and running while the jar holds 100,
   10,000 and 100,000 queued jobs of one category and priority, with a few
   higher-priority ones that must be claimed first (the claim order is
   checked against the records);
3. submission: ``jobjar.submit_job`` in one process, one ``submit_job``
   process per job (the installed script in a virtual environment, and
   ``bin/submit_job``), and ``submit_job --from-file`` with 10,000 lines;
4. latency: an idle worker (default ``JJ_PAUSE_TIME``), one submitted job,
   time until the job starts (it writes a timestamp); median of 20;
5. ``system_status --json`` on the jar of 100,000 jobs, and the peak
   resident memory of the workers over the throughput runs;
6. placement: the throughput of section 1 with placement off, with the
   node gates on (``JJ_MAX_LOAD``, ``JJ_MIN_FREE_MEMORY``, set so that they
   never hold: their cost, not their effect), and with the gates on and
   every job asking ``--mem 1M --cpus 1`` (each claim then counts what the
   node's other workers hold), interleaved, median of 3 each;
7. executor: ``jobjar.Executor().map`` of 10,000 trivial calls with W
   workers and the default chunking, next to ``ProcessPoolExecutor(W).map``
   of the same calls (both timed from the executor's creation to the last
   result), and ``Executor().submit(f).result()`` on an idle jar (median).
8. history: ``list_jobs`` with 100,000 queued jobs (default columns, which
   read every job file for its command, and without the command), run as
   the virtual environment's console script (as installed: not through
   this machine's interpreter shims) beside that venv's ``python3 -c pass``;
   ``system_status`` with 100 and with 100,000 finished jobs; ``purge_jobs``
   of 100,000 finished jobs; the CPU a worker spends per job on accounting
   (``records.command_line``, ``execute.Usage``, the extra record fields),
   against the time per job of the throughput run.
9. fileserver: the filesystem operations one job costs (submission, then the
   worker) and one idle worker costs per minute, on a jar over ``sshfs``
   from a loopback ``sshd``: system calls on the jar (``strace``) and the
   SFTP requests sent to the server, by kind (``bench/fileserver.py``).

It is never run by the tests: it takes a few minutes and its figures depend
on the machine.  Speed is only ever measured here.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fileserver  # noqa: E402 - bench/fileserver.py, beside this file

TOP = Path(__file__).resolve().parent.parent
BIN = TOP / "bin"
DOC = TOP / "docs" / "performance.md"
sys.path.insert(0, str(TOP))

ROOT: list[Path] = []  # the benchmark's directory, for the machine description
SECTIONS = ("throughput", "depth", "submit", "latency", "status", "placement", "executor",
            "history", "fileserver")
TARGETS = {
    "throughput": "jobs/s >= 0.8 x xargs",
    "depth": "cost at 100,000 <= 1.5 x cost at 100, priority order kept",
    "latency": "median <= 10 ms",
    "submit_api": ">= 5,000 jobs/s",
    "submit_proc": "<= 40 ms wall",
    "submit_venv": "median < 25 ms",
    "latency_cmd": "median < 30 ms",
    "from_file": "< 2 s",
    "status": "< 1 s",
    "rss": "< 40 MB",
    "placement": "cost <= 10 % of throughput",
    "executor_map": "<= ProcessPoolExecutor + 1 s",
    "executor_call": "median < 150 ms",
    "list_jobs": "< 1 s",
    "status_history": "< 0.5 s and <= 1.5 x the cost at 100 finished",
    "purge": "< 30 s",
    "page": "< 1 s",
    "accounting": "<= 5 % of a job's time",
}
#: Placement settings that are on but never hold claims (the benchmark measures their cost).
PLACEMENT_ENV = {"JJ_MAX_LOAD": "1000", "JJ_MIN_FREE_MEMORY": "1M"}
PLACEMENT_ASKS = {"mem": "1M", "cpus": 1}


# -- helpers -------------------------------------------------------------------

def say(message: str) -> None:
    """Progress on stderr, so that stdout holds only the table."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def wait_until(condition, timeout: float, what: str, interval: float = 0.005) -> None:
    """Poll ``condition`` until it holds; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def count(path: Path) -> int:
    """Entries in a directory (0 if it is missing)."""
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def last_record(results: Path) -> float:
    """The modification time of the newest file in a directory (a record, a touched file)."""
    with os.scandir(results) as entries:
        return max(e.stat().st_mtime for e in entries if not e.name.startswith("."))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as src:
            return src.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used itself, its children not counted."""
    try:
        with open(f"/proc/{pid}/stat") as src:
            fields = src.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def peak_rss_kib(pid: int) -> int:
    """The peak resident set size of a running process (VmHWM), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as src:
            for line in src:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


class Jar:
    """One temporary jar and the workers started on it."""

    def __init__(self, root: Path, name: str) -> None:
        self.home = root / name
        self.home.mkdir(parents=True)
        self.env = base_env(root)
        self.env["JJ_HOME"] = str(self.home)
        self.pids: list[int] = []

    def start_workers(self, count_: int, *categories: str) -> list[int]:
        """Start workers with ``bin/start_worker``; return their pids."""
        try:  # left by the previous round's stop
            os.unlink(self.home / "workers" / "STOP_ALL")
        except FileNotFoundError:
            pass
        for _ in range(count_):
            out = subprocess.run([str(BIN / "start_worker"), *categories], env=self.env,
                                 check=True, capture_output=True, text=True).stdout
            self.pids.append(int(out.strip().rsplit(".", 1)[1]))
        return list(self.pids)

    def stop_workers(self) -> None:
        """STOP_ALL, wait for the workers to leave, then SIGKILL any left (by pid)."""
        workers = self.home / "workers"
        workers.mkdir(exist_ok=True)
        (workers / "STOP_ALL").touch()
        deadline = time.monotonic() + 15
        while any(alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in self.pids:
            if alive(pid):
                say(f"worker {pid} did not stop: SIGKILL")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pids = []

    def activate(self) -> None:
        """Point this process's environment (and so ``jobjar``) at this jar."""
        for key in [k for k in os.environ if k.startswith("JJ_")]:
            del os.environ[key]
        os.environ.update(self.env)


def base_env(root: Path) -> dict[str, str]:
    """A clean environment: no personal config, default pause time, may run as root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JJ_")}
    home = root / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), JJ_ALLOW_ROOT="yes", TMPDIR=str(root / "tmp"))
    (root / "tmp").mkdir(exist_ok=True)
    return env


def touch_scripts(directory: Path, outdir: Path, n: int) -> Path:
    """N one-line shell scripts that each touch their own file; returns the list file."""
    directory.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = directory / f"job{i}"
        path.write_text(f"#!/bin/sh\ntouch {outdir}/f{i}\n")
        path.chmod(0o755)
        paths.append(str(path))
    listing = directory.parent / f"{directory.name}.list"
    listing.write_text("\n".join(paths) + "\n")
    return listing


def check_touched(outdir: Path, n: int, tool: str) -> None:
    """Every job must have touched its file: a fast wrong answer is no answer."""
    found = set(os.listdir(outdir))
    missing = [i for i in range(n) if f"f{i}" not in found]
    if missing:
        raise RuntimeError(f"{tool}: {len(missing)} of {n} files missing (e.g. f{missing[0]})")


# -- 1. throughput, in both forms ---------------------------------------------------
#
# "script": every tool runs the same one-line ``#!/bin/sh`` script per job (the
# table of earlier runs).  "native": each tool as its users run it, the command
# itself: ``tsp touch X``, ``nq touch X``, ``parallel touch ::: ...``,
# ``jobjar.submit_job("touch X")``; ``xargs -P W`` is the floor of each form.

FORMS = ("script", "native")
#: Jobs for "one submit_job process per job": a process each costs tens of ms.
PER_PROCESS_JOBS = 300


def job_words(root: Path, tag: str, form: str, n: int) -> tuple[Path, list[list[str]]]:
    """The output directory and, per job, the command words of that form."""
    outdir = root / f"tp-{tag}-out"
    outdir.mkdir()
    if form == "native":
        return outdir, [["touch", f"{outdir}/f{i}"] for i in range(n)]
    listing = touch_scripts(root / f"tp-{tag}-scripts", outdir, n)
    return outdir, [[line] for line in listing.read_text().split()]


def tp_jobjar(root: Path, tag: str, n: int, w: int, rss: list[int],
              extra_env: dict | None = None, job_options: dict | None = None,
              cpu: list[float] | None = None, form: str = "native",
              how: str = "api") -> float:
    """Jobs through W workers: ``jobjar.submit_job`` per job (``how="api"``), one
    ``submit_job --from-file`` (``"from-file"``), or one ``submit_job`` process per
    job (``"process"``); from the first submission to the last record."""
    jar = Jar(root, f"tp-{tag}")
    jar.env.update(extra_env or {})
    outdir, jobs = job_words(root, tag, form, n)
    lines = [" ".join(words) for words in jobs]
    if how == "from-file":
        (root / f"tp-{tag}.lines").write_text("\n".join(lines) + "\n")
    try:
        jar.start_workers(w)
        time.sleep(0.3)  # let them settle into their idle sleep
        jar.activate()
        import jobjar

        completed = jar.home / "completed"
        start = time.time()
        if how == "api":
            for line in lines:
                jobjar.submit_job(line, **(job_options or {}))
        elif how == "from-file":
            subprocess.run([str(BIN / "submit_job"), "--from-file", str(root / f"tp-{tag}.lines")],
                           env=jar.env, check=True, stdout=subprocess.DEVNULL)
        else:
            for words in jobs:
                subprocess.run([str(BIN / "submit_job"), *words], env=jar.env, check=True,
                               stdout=subprocess.DEVNULL)
        # Polled slowly, so that the harness takes no CPU from the workers; the
        # end is when the last record was written (just before its job's move).
        wait_until(lambda: count(completed) >= n, 600, "jobjar jobs", 0.1)
        elapsed = last_record(jar.home / "results") - start
        rss.extend(peak_rss_kib(p) for p in jar.pids)
        if cpu is not None:  # the workers' own CPU per job (their jobs not counted)
            cpu.append(sum(cpu_seconds(p) for p in jar.pids) / n)
    finally:
        jar.stop_workers()
    check_touched(outdir, n, "jobjar")
    bad = [name for name in os.listdir(completed)
           if '"succeeded"' not in (jar.home / "results" / f"{name}.yaml").read_text()]
    if bad:
        raise RuntimeError(f"jobjar: {len(bad)} jobs did not succeed, e.g. {bad[0]}")
    return elapsed


def tp_xargs(root: Path, tag: str, n: int, w: int, form: str = "script") -> float:
    outdir, jobs = job_words(root, tag, form, n)
    args = ["xargs", "-P", str(w), "-n", "1", "sh"] if form == "script" else \
        ["xargs", "-P", str(w), "-n", "1", "touch"]
    text = "\n".join(words[-1] for words in jobs) + "\n"
    start = time.perf_counter()
    subprocess.run(args, input=text, text=True, check=True)
    elapsed = time.perf_counter() - start
    check_touched(outdir, n, "xargs")
    return elapsed


def tp_parallel(root: Path, tag: str, n: int, w: int, form: str = "script") -> float:
    outdir, jobs = job_words(root, tag, form, n)
    listing = root / f"tp-{tag}.args"
    listing.write_text("\n".join(words[-1] for words in jobs) + "\n")
    command = [] if form == "script" else ["touch"]
    start = time.perf_counter()
    subprocess.run(["parallel", "--will-cite", "-j", str(w), *command, "::::", str(listing)],
                   env=base_env(root), check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    check_touched(outdir, n, "parallel")
    return elapsed


def tsp_env(root: Path, tag: str) -> dict[str, str]:
    env = base_env(root)
    env.update(TS_SOCKET=str(root / f"tsp-{tag}.socket"), TS_MAXFINISHED=str(10**6))
    return env


def tp_tsp(root: Path, tag: str, n: int, w: int, tsp: str, form: str = "script") -> float:
    outdir, jobs = job_words(root, tag, form, n)
    env = tsp_env(root, tag)
    subprocess.run([tsp, "-S", str(w)], env=env, check=True)
    command = [tsp] if form == "script" else [tsp, "touch"]
    text = "\n".join(words[-1] for words in jobs) + "\n"
    try:
        start = time.time()
        # one client per job, as a user's loop would run them
        subprocess.run(["xargs", "-n", "1", *command], input=text, text=True, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        wait_until(lambda: count(outdir) >= n, 600, "tsp jobs", 0.1)  # as for jobjar
        elapsed = last_record(outdir) - start  # the newest touched file
    finally:
        subprocess.run([tsp, "-K"], env=env, stderr=subprocess.DEVNULL)
    check_touched(outdir, n, "tsp")
    return elapsed


def tp_nq(root: Path, tag: str, n: int, w: int, form: str = "script") -> float:
    """nq runs one queue per directory, one job at a time: W directories are W slots,
    filled in turn (``NQDIR=slotK nq -q CMD``, one client per job)."""
    outdir, jobs = job_words(root, tag, form, n)
    slots = [root / f"nq-{tag}-{k}" for k in range(w)]
    for slot in slots:
        slot.mkdir()
    env = base_env(root)
    start = time.time()
    for i, words in enumerate(jobs):
        command = ["sh", *words] if form == "script" else words
        subprocess.run(["nq", "-q", *command], env={**env, "NQDIR": str(slots[i % w])},
                       check=True, stdout=subprocess.DEVNULL)
    wait_until(lambda: count(outdir) >= n, 600, "nq jobs", 0.1)
    elapsed = last_record(outdir) - start
    for slot in slots:  # every job has ended (its file is there): wait for nq's exits
        subprocess.run(["nq", "-w"], env={**env, "NQDIR": str(slot)}, timeout=120)
    check_touched(outdir, n, "nq")
    return elapsed


def find_tsp() -> str | None:
    for name in ("tsp", "ts"):
        path = shutil.which(name)
        if path:
            probe = subprocess.run([path, "-h"], capture_output=True, text=True)
            if "spooler" in (probe.stdout + probe.stderr).lower():
                return path
    return None


def peers(results: dict) -> dict[str, object]:
    """The tools of the throughput table (a missing peer is named in the notes)."""
    tools: dict[str, object] = {"jobjar": "api", "jobjar --from-file": "from-file",
                                "submit_job per job": "process", "xargs": tp_xargs}
    tsp = find_tsp()
    if tsp:
        tools["task-spooler"] = lambda root, tag, n, w, form: tp_tsp(root, tag, n, w, tsp, form)
    else:
        results["notes"].append("task-spooler not installed: skipped")
    for name, runner, program in (("nq", tp_nq, "nq"), ("GNU Parallel", tp_parallel, "parallel")):
        if shutil.which(program):
            tools[name] = runner
        else:
            results["notes"].append(f"{name} not installed: skipped")
    return tools


def throughput(root: Path, n: int, w: int, repeat: int, results: dict) -> None:
    """Every tool in both forms, the runs interleaved (tool by tool, form by form,
    then again), so that a machine whose speed drifts affects them alike."""
    tools = peers(results)
    times: dict[tuple[str, str], list[float]] = {}
    jobs: dict[str, int] = {}
    rss: list[int] = []
    made = 0  # every run its own directories
    for r in range(repeat):
        for form in FORMS:
            for tool, runner in tools.items():
                made += 1
                tag = f"{tool.split()[0].lower().replace('_', '')}-{form}-{r}-{made}"
                count_ = PER_PROCESS_JOBS if runner == "process" else n
                jobs[tool] = min(count_, n)
                say(f"throughput {form} {tool} run {r + 1}/{repeat}")
                if isinstance(runner, str):
                    t = tp_jobjar(root, tag, jobs[tool], w, rss, form=form, how=runner)
                else:
                    t = runner(root, tag, jobs[tool], w, form)
                times.setdefault((form, tool), []).append(jobs[tool] / t)
                say(f"  {jobs[tool] / t:,.0f} jobs/s")
    results["throughput"] = {"runs": {f"{form}|{tool}": v for (form, tool), v in times.items()},
                             "jobs": jobs, "workers": w,
                             "rates": {"jobjar": statistics.median(
                                 times.get(("native", "jobjar"), [0.0])) or None}}
    results["rss_kib"] = max(rss) if rss else None


def throughput_rows(tp: dict, args) -> list[str]:
    """One table per form: median jobs/s, the spread, and the ratio to xargs."""
    rows = []
    leaders = ("jobjar", "jobjar --from-file")
    for form in FORMS:
        runs = {key.split("|", 1)[1]: v for key, v in tp["runs"].items()
                if key.startswith(form + "|")}
        if not runs:
            continue
        medians = {tool: statistics.median(v) for tool, v in runs.items()}
        floor = medians.get("xargs")
        best_peer = max((m for t, m in medians.items()
                         if t not in (*leaders, "xargs", "submit_job per job")), default=None)
        what = ("the same one-line sh script per job" if form == "script"
                else "each tool as its users run it: touch X")
        rows += ["", f"Throughput, {form} form ({args.workers} workers; {what})",
                 "", "| tool | jobs | median jobs/s | spread (min-max) | x xargs | runs | "
                 "ahead of every peer? |", "|---|---|---|---|---|---|---|"]
        for tool, median in sorted(medians.items(), key=lambda kv: -kv[1]):
            ratio = f"{median / floor:.2f}" if floor else "-"
            ahead = verdict(median > best_peer) if tool in leaders and best_peer else ""
            rows.append(f"| {tool} | {tp['jobs'][tool]:,} | {median:,.0f} | "
                        f"{min(runs[tool]):,.0f}-{max(runs[tool]):,.0f} | {ratio} | "
                        f"{len(runs[tool])} | {ahead} |")
    return rows


# -- 6. placement ----------------------------------------------------------------

def placement(root: Path, n: int, w: int, repeat: int, results: dict) -> None:
    """Throughput with placement off, with the node gates on, and with jobs that ask."""
    variants = {"off": ({}, {}), "gates on": (PLACEMENT_ENV, {}),
                "gates on, jobs ask --mem --cpus": (PLACEMENT_ENV, PLACEMENT_ASKS)}
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(repeat):
        for i, (variant, (env, options)) in enumerate(variants.items()):
            say(f"placement {variant} run {r + 1}/{repeat}")
            times[variant].append(tp_jobjar(root, f"place-{i}-{r}", n, w, [], env, options,
                                            cpu[variant]))
            say(f"  {n / times[variant][-1]:,.0f} jobs/s, worker CPU "
                f"{cpu[variant][-1] * 1000:.2f} ms/job")
    results["placement"] = {"rates": {v: n / statistics.median(t) for v, t in times.items()},
                            "runs": {v: [n / x for x in t] for v, t in times.items()},
                            "cpu": {v: statistics.median(c) for v, c in cpu.items()}}


# -- 2. depth ---------------------------------------------------------------------

HIGH = ((9, 3), (3, 3))  # (priority, how many): claimed before every priority-0 job


def prefill(queue: Path, outdir: Path, total: int) -> list[str]:
    """Write jobs straight into a category, as ``cp`` + ``mv`` would; return the names
    in the order a worker must claim them (priority, then mtime, then name)."""
    queue.mkdir(parents=True)
    body = f'#!/bin/sh\ntouch "{outdir}/$JJ_JOB_NAME"\n'.encode()
    names = [f"depth{i:07d}.0" for i in range(total)]
    for prio, many in HIGH:  # the newest files: only their priority puts them first
        names += [f"urgent{prio}-{j}.{prio}" for j in range(many)]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for name in names:
        fd = os.open(queue / name, flags, 0o755)
        os.write(fd, body)
        os.close(fd)
    from jobjar.naming import priority_of

    with os.scandir(queue) as entries:
        keys = [(-priority_of(e.name), e.stat().st_mtime_ns, e.name) for e in entries]
    return [k[2] for k in sorted(keys)]


class DepthJar:
    """A jar pre-filled with ``queued`` + the jobs the rounds will run."""

    def __init__(self, root: Path, queued: int, per_round: int, rounds: int) -> None:
        self.queued, self.per_round = queued, per_round
        self.jar = Jar(root, f"depth-{queued}")
        outdir = root / f"depth-{queued}-out"
        outdir.mkdir()
        say(f"depth {queued:,}: writing {queued + per_round * rounds:,} jobs")
        self.expected = prefill(self.jar.home / "unclaimed" / "bench", outdir,
                                queued + per_round * rounds)
        self.done = 0
        self.costs: list[float] = []

    def run_round(self) -> float:
        """Start one worker, let it run ``per_round`` jobs (plus, the first time, the
        urgent ones), stop it; return the time per job between its first and last claim."""
        completed = self.jar.home / "completed"
        completed.mkdir(exist_ok=True)
        before = set(os.listdir(completed))
        wanted = self.per_round + (sum(m for _, m in HIGH) if not before else 0)
        self.jar.start_workers(1, "bench")
        try:
            wait_until(lambda: count(completed) >= len(before) + wanted, 900,
                       f"depth {self.queued} jobs", 0.01)
        finally:
            self.jar.stop_workers()
        claims = sorted(claim_time(self.jar, n) for n in set(os.listdir(completed)) - before)
        cost = (claims[-1][0] - claims[0][0]) / (len(claims) - 1)
        self.costs.append(cost)
        self.done = count(completed)
        return cost

    def order_kept(self) -> tuple[bool, str]:
        """Compare every claim so far with the order the protocol prescribes."""
        completed = self.jar.home / "completed"
        order = [n for _, n in sorted(claim_time(self.jar, n) for n in os.listdir(completed))]
        if order == self.expected[: len(order)]:
            return True, ""
        return False, _first_diff(order, self.expected)


def claim_time(jar: Jar, name: str) -> tuple[float, str]:
    """When a finished job was claimed, from its record (which must say succeeded)."""
    from jobjar import records

    record = records.read(jar.home / "results" / f"{name}.yaml") or {}
    if record.get("status") != "succeeded":
        raise RuntimeError(f"{name} ended {record.get('status')}")
    stamp = datetime.datetime.fromisoformat(record["claimed"].replace("Z", "+00:00"))
    return stamp.timestamp(), name


def _first_diff(order: list[str], expected: list[str]) -> str:
    for i, (got, want) in enumerate(zip(order, expected)):
        if got != want:
            return f"claim #{i + 1} was {got}, expected {want}"
    return "order differs"


def depth(root: Path, sizes: list[int], per_round: int, rounds: int, results: dict) -> None:
    jars = [DepthJar(root, q, per_round, rounds) for q in sizes]
    for r in range(rounds):  # interleaved, so that drift hits every size alike
        for dj in jars:
            cost = dj.run_round()
            say(f"depth {dj.queued:,} round {r + 1}/{rounds}: {cost * 1000:.2f} ms/job")
    rows = []
    for dj in jars:
        kept, detail = dj.order_kept()
        if not kept:
            say(f"depth {dj.queued:,}: priority order BROKEN: {detail}")
        rows.append({"queued": dj.queued, "jobs": dj.done, "per_job": statistics.median(dj.costs),
                     "rounds": dj.costs, "in_order": kept, "jar": dj.jar})
    results["depth"] = rows


# -- 3. submission ------------------------------------------------------------------

API_SNIPPET = """
import sys, time, jobjar
n = int(sys.argv[1])
jobjar.submit_job("true")  # first call loads the configuration
start = time.perf_counter()
for _ in range(n):
    jobjar.submit_job("true")
print(time.perf_counter() - start)
"""


VENV: dict[Path, Path | None] = {}  # root -> the venv's submit_job (made once per run)


VENV_NOTE = ("the virtual environment's package is installed by `pip install`, every module's "
             ".pyc made (`compileall`), as an installed package has them: this benchmark may "
             "run with PYTHONDONTWRITEBYTECODE=1, under which Python would otherwise compile "
             "each module at every start; `python3 -c pass` beside it is the same venv's "
             "interpreter, with the same site-packages")


def make_venv(root: Path, results: dict | None = None) -> Path | None:
    """An installed copy of the package (its commands' scripts) in a virtual environment.

    Installed as a user installs it (``pip install``), with every module's
    ``.pyc`` made: pip compiles what it installs, and ``compileall`` makes
    sure of it, since this benchmark may run with ``PYTHONDONTWRITEBYTECODE``
    set (a Python that cannot cache bytecode compiles every module at every
    start, which no installed package does).  Returns its ``submit_job``.
    """
    if root in VENV:
        return VENV[root]
    say("making a virtual environment with the package installed")
    VENV[root] = None
    venv = root / "venv"
    src = root / "src"
    try:
        shutil.copytree(TOP / "jobjar", src / "jobjar",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy(TOP / name, src / name)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True)
        python = venv / "bin" / "python3"
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(src)],
                       check=True, capture_output=True)
        package = subprocess.run([str(python), "-c", "import jobjar, os; "
                                  "print(os.path.dirname(jobjar.__file__))"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        subprocess.run([str(python), "-m", "compileall", "-q", package], check=True,
                       capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        if isinstance(err, str):
            err = err.encode()
        say(f"venv install failed: {exc} {err.decode(errors='replace')[-300:]}")
        return None
    missing = [str(p) for p in Path(package).rglob("*.py")
               if not Path(importlib.util.cache_from_source(str(p))).exists()]
    if missing:
        say(f"venv: no .pyc for {', '.join(missing)}")
        return None
    script = venv / "bin" / "submit_job"
    VENV[root] = script if script.exists() else None
    if VENV[root] and results is not None and VENV_NOTE not in results["notes"]:
        results["notes"].append(VENV_NOTE)
    return VENV[root]


def time_processes(argv: list[str], env: dict, runs: int) -> float:
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def interleaved(commands: dict[str, list[str]], env: dict, runs: int) -> dict[str, dict]:
    """Run each command ``runs`` times, taking turns (load changes hit all alike).

    For each: the median wall time, its spread (10th-90th percentile) and
    the median CPU time (user + system: what load does not inflate much).
    """
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            walls[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {name: {"median": statistics.median(walls[name]), "spread": spread(walls[name]),
                   "cpu": statistics.median(cpus[name]), "runs": runs} for name in commands}


def spread(values: list[float]) -> tuple[float, float]:
    """The 10th and 90th percentiles."""
    if len(values) < 2:
        return values[0], values[0]
    deciles = statistics.quantiles(values, n=10)
    return deciles[0], deciles[-1]


def submission(root: Path, api_jobs: int, proc_runs: int, lines: int, results: dict) -> None:
    out: dict = {}
    jar = Jar(root, "submit-api")
    env = dict(jar.env, PYTHONPATH=str(TOP))
    say(f"submission: jobjar.submit_job x {api_jobs:,}")
    secs = float(subprocess.run([sys.executable, "-c", API_SNIPPET, str(api_jobs)], env=env,
                                check=True, capture_output=True, text=True).stdout)
    if count(jar.home / "unclaimed") != api_jobs + 1:
        raise RuntimeError("submit_job: wrong number of jobs in the jar")
    out["api"] = api_jobs / secs

    jar = Jar(root, "submit-proc")
    say(f"submission: {proc_runs} bin/submit_job processes")
    out["bin"] = time_processes([str(BIN / "submit_job"), "true"], jar.env, proc_runs)
    script = make_venv(root, results)
    if script:
        say(f"submission: {proc_runs} installed submit_job processes (venv), interleaved with "
            "its python3 -c pass")
        python = str(script.parent / "python3")
        out["venv"] = interleaved({"submit": [str(script), "true"],
                                   "pass": [python, "-c", "pass"]}, jar.env, proc_runs)
    else:
        out["venv"] = None
        results["notes"].append("virtual environment could not be made: the "
                                "installed script not measured")
    out["python"] = time_processes([sys.executable, "-c", "pass"], jar.env, proc_runs)
    out["python_S"] = time_processes([sys.executable, "-I", "-S", "-c", "pass"], jar.env,
                                     proc_runs)

    jar = Jar(root, "submit-file")
    listing = root / "lines.txt"
    listing.write_text("".join(f"echo line {i}\n" for i in range(lines)))
    say(f"submission: submit_job --from-file with {lines:,} lines")
    start = time.perf_counter()
    subprocess.run([str(BIN / "submit_job"), "--from-file", str(listing)], env=jar.env,
                   check=True, stdout=subprocess.DEVNULL)
    out["from_file"] = time.perf_counter() - start
    if count(jar.home / "unclaimed") != lines:
        raise RuntimeError("--from-file: wrong number of jobs in the jar")
    results["submit"] = out


# -- 4. latency ---------------------------------------------------------------------

def started_at(jar: Jar, name: str) -> float:
    """When the worker started the job's process (its record's ``started``)."""
    from jobjar import records

    record = records.read(jar.home / "results" / f"{name}.yaml")
    return datetime.datetime.fromisoformat(record["started"].replace("Z", "+00:00")).timestamp()


def command_latency(root: Path, jar: Jar, outdir: Path, samples: int) -> dict:
    """Submit-to-start through the installed command: ``submit_job CMD`` on an idle worker.

    Timed from just before the ``submit_job`` process is started until the
    job's command runs (``date`` writes the time), and until the worker
    started the job's process (its record); beside it, the same
    interpreter's ``python3 -c pass`` (what no command can go below).
    """
    script = make_venv(root)
    job_lat, spawn_lat, python = [], [], []
    completed = jar.home / "completed"
    for i in range(samples):
        stamp = outdir / f"c{i}"
        time.sleep(0.2)  # the worker is back in its idle sleep
        start = time.perf_counter()
        subprocess.run([str(script.parent / "python3"), "-c", "pass"], env=jar.env, check=True)
        python.append(time.perf_counter() - start)
        time.sleep(0.05)
        t0 = time.time()
        name = subprocess.run([str(script), f"date +%s.%N > {stamp}.tmp && mv {stamp}.tmp "
                               f"{stamp}"], env=jar.env, check=True, capture_output=True,
                              text=True).stdout.strip()
        wait_until((completed / name).exists, 120, "the latency job")
        job_lat.append(float(stamp.read_text()) - t0)
        spawn_lat.append(started_at(jar, name) - t0)
    return {"job": statistics.median(job_lat), "spread": spread(job_lat),
            "spawn": statistics.median(spawn_lat), "python": statistics.median(python),
            "samples": samples}


def latency(root: Path, samples: int, results: dict) -> None:
    script = make_venv(root, results)
    if not script:
        results["notes"].append("virtual environment could not be made: submit-to-start "
                                "through the command not measured")
    jar = Jar(root, "latency")
    outdir = root / "latency-out"
    outdir.mkdir()
    completed = jar.home / "completed"
    job_lat, spawn_lat = [], []
    try:
        jar.start_workers(1)
        time.sleep(0.5)
        jar.activate()
        import jobjar

        for i in range(samples):
            stamp = outdir / f"t{i}"
            time.sleep(0.2)  # the worker is back in its idle sleep
            t0 = time.time()
            name = jobjar.submit_job(f"date +%s.%N > {stamp}.tmp && mv {stamp}.tmp {stamp}")
            wait_until((completed / name).exists, 120, "the latency job")
            job_lat.append(float(stamp.read_text()) - t0)
            spawn_lat.append(started_at(jar, name) - t0)
        command = command_latency(root, jar, outdir, samples) if script else None
    finally:
        jar.stop_workers()
    out = {"job": statistics.median(job_lat), "spawn": statistics.median(spawn_lat),
           "max": max(job_lat), "command": command}
    tsp = find_tsp()
    if tsp:
        env = tsp_env(root, "latency")
        subprocess.run([tsp, "-S", "1"], env=env, check=True)
        lat = []
        try:
            for i in range(samples):
                stamp = outdir / f"tsp{i}"
                time.sleep(0.05)
                t0 = time.time()
                subprocess.run([tsp, "sh", "-c", f"date +%s.%N > {stamp}.tmp && "
                                f"mv {stamp}.tmp {stamp}"], env=env, check=True,
                               stdout=subprocess.DEVNULL)
                wait_until(stamp.exists, 60, "the tsp latency job")
                lat.append(float(stamp.read_text()) - t0)
        finally:
            subprocess.run([tsp, "-K"], env=env, stderr=subprocess.DEVNULL)
        out["tsp"] = statistics.median(lat)
    results["latency"] = out


# -- 5. system_status ---------------------------------------------------------------

def status(root: Path, jar: Jar | None, queued: int, results: dict) -> None:
    if not (TOP / "jobjar" / "status.py").exists():
        results["notes"].append("jobjar/status.py missing: system_status not measured")
        return
    if jar is None:
        jar = Jar(root, "status")
        outdir = root / "status-out"
        outdir.mkdir()
        prefill(jar.home / "unclaimed" / "bench", outdir, queued)
    total = sum(count(jar.home / d) for d in ("completed",)) + count(
        jar.home / "unclaimed" / "bench")
    say(f"system_status --json on a jar of {total:,} jobs")
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run([str(BIN / "system_status"), "--json"], env=jar.env,
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            results["notes"].append(f"system_status failed: {proc.stderr.strip()[:200]}")
            return
    results["status"] = {"seconds": statistics.median(walls), "jobs": total}


# -- 6. Python calls: jobjar.Executor ------------------------------------------------

def executor(root: Path, calls: int, w: int, repeat: int, samples: int, results: dict) -> None:
    """``map`` of ``calls`` trivial calls against ``ProcessPoolExecutor``; one call's latency."""
    from concurrent.futures import ProcessPoolExecutor

    jar = Jar(root, "executor")
    out: dict = {"jobjar": [], "pool": [], "calls": calls}
    expected = [abs(-i) for i in range(calls)]
    try:
        jar.start_workers(w)
        time.sleep(0.5)
        jar.activate()
        import jobjar

        for _ in range(repeat):  # interleaved: the machine's load shifts under both alike
            start = time.perf_counter()
            with jobjar.Executor() as pool:
                got = list(pool.map(abs, range(0, -calls, -1)))
            out["jobjar"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with ProcessPoolExecutor(w) as pool:
                got_pool = list(pool.map(abs, range(0, -calls, -1)))
            out["pool"].append(time.perf_counter() - start)
            if got != expected or got_pool != expected:
                raise RuntimeError("executor: wrong results")
        one = []
        with jobjar.Executor() as pool:
            for i in range(samples):
                time.sleep(0.2)  # the workers are back in their idle sleep
                start = time.perf_counter()
                if pool.submit(abs, -i).result() != i:
                    raise RuntimeError("executor: wrong result")
                one.append(time.perf_counter() - start)
        out["call"] = statistics.median(one)
        out["call_max"] = max(one)
        left = [p for p in (jar.home / "calls").rglob("*")]
        if any(p.is_file() for p in left):
            results["notes"].append(f"executor: {len(left)} call files left in calls/")
    finally:
        jar.stop_workers()
    results["executor"] = out


# -- 6. history: list_jobs, system_status and purge_jobs at 100,000 -----------------

def finished_jar(root: Path, name: str, total: int, age: float) -> Jar:
    """A jar holding ``total`` finished jobs as workers leave them: the job file in
    ``completed/``, a record, an output file; records ``age`` seconds old; and a
    worker directory whose log names the last of them (``system_status`` reads it)."""
    from jobjar import records

    jar = Jar(root, name)
    for sub in ("completed", "results", "output", "unclaimed", "workers/bench.1"):
        (jar.home / sub).mkdir(parents=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    then = time.time() - age
    log = []
    for i in range(total):
        job = f"done{i:07d}.0"
        status = "failed" if i % 10 == 0 else "succeeded"
        record = records.blank(job, None, 0)
        record.update(status=status, exit_code=1 if status == "failed" else 0,
                      finished=records.utc_iso(then), max_rss_kb=3000, cpu_user_s=0.001,
                      cpu_system_s=0.001, command="echo hello", node="bench", worker="bench.1")
        for path, data in ((jar.home / "completed" / job, b"#!/bin/sh\necho hello\n"),
                           (jar.home / "results" / f"{job}.yaml", records.dump(record).encode()),
                           (jar.home / "output" / f"{job}.out", b"hello\n")):
            fd = os.open(path, flags, 0o755)
            os.write(fd, data)
            os.close(fd)
        os.utime(jar.home / "results" / f"{job}.yaml", (then, then))
        if i >= total - 200:
            log.append(f"{records.utc_iso(then + i / total)} finish {job} {status}\n")
    (jar.home / "workers" / "bench.1" / "log").write_text("".join(log))
    (jar.home / "workers" / "bench.1" / "info.yaml").write_text("pid: 1\n")
    return jar


CPU: dict[str, float] = {}  # command label -> median CPU seconds (user + system) of its runs


def timed(argv: list[str], env: dict, runs: int = 3, label: str = "") -> float | None:
    """Median wall time of a command (output thrown away); ``None`` if it failed.

    Its median CPU time (user + system) goes to ``CPU[label]``: on a loaded
    machine the wall time says more about the neighbours than about us.
    """
    import resource

    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            say(f"{argv[0]} failed: {proc.stderr.decode()[:200]}")
            return None
    CPU[label or argv[0]] = statistics.median(cpus)
    return statistics.median(walls)


def accounting_cost(runs: int = 20000) -> float:
    """Seconds of worker CPU per job that accounting adds (measured in this process)."""
    import resource

    from jobjar import execute, records

    head = b"#!/bin/sh\n#JJ --retries 1\ntouch \"$HOME/out/$JJ_JOB_NAME\"\n"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    extra = {"max_rss_kb": 3000, "cpu_user_s": 0.0012, "cpu_system_s": 0.0004,
             "command": "touch \"$HOME/out/$JJ_JOB_NAME\""}
    start = time.process_time()
    for _ in range(runs):
        record = {"command": records.command_line(head)}
        record.update(zip(records.USAGE_FIELDS, execute.Usage.of(usage)))
        records.dump(extra)
    return (time.process_time() - start) / runs


def history(root: Path, deep: Jar | None, results: dict) -> None:
    out: dict = {}
    if deep is not None:  # the depth section's jar: 100,000 queued jobs already
        queued = deep
    else:
        queued = Jar(root, "listing")
        outdir = root / "listing-out"
        outdir.mkdir()
        prefill(queued.home / "unclaimed" / "bench", outdir, 100_000)
    out["queued"] = count(queued.home / "unclaimed" / "bench")
    say(f"list_jobs with {out['queued']:,} queued jobs")
    script = make_venv(root, results)  # installed as users have it (not this machine's
    command = str(script.parent / "list_jobs") if script else str(BIN / "list_jobs")  # shims)
    out["list_via"] = "venv" if script else "checkout"
    if script:
        out["list_pass"] = timed([str(script.parent / "python3"), "-c", "pass"], queued.env,
                                 label="list_pass")
    out["list"] = timed([command], queued.env, label="list")
    out["list_nocmd"] = timed([command, "--format",
                               "state,name,category,priority,owner,worker,age"], queued.env,
                              label="list_nocmd")
    small = finished_jar(root, "finished-100", 100, 2 * 86400)
    say("building a jar of 100,000 finished jobs")
    big = finished_jar(root, "finished-100000", 100_000, 2 * 86400)
    say("system_status with 100 and 100,000 finished jobs")
    out["status_small"] = timed([str(BIN / "system_status"), "--json"], small.env, 5,
                                "status_small")
    out["status_big"] = timed([str(BIN / "system_status"), "--json"], big.env, 5, "status_big")
    say("system_status --html with 100,000 finished jobs (two days old; and all recent)")
    page = str(root / "status.html")
    out["page_old"] = timed([str(BIN / "system_status"), "--html", page], big.env, 3, "page_old")
    recent = finished_jar(root, "finished-recent", 100_000, 600)
    out["page_recent"] = timed([str(BIN / "system_status"), "--html", page], recent.env, 3,
                               "page_recent")
    shutil.rmtree(recent.home, ignore_errors=True)
    say("purge_jobs --older-than 1d of 100,000 finished jobs")
    out["purge"] = timed([str(BIN / "purge_jobs"), "--older-than", "1d"], big.env, 1, "purge")
    out["cpu"] = dict(CPU)
    left = sum(count(big.home / d) for d in ("completed", "results", "output"))
    if left:
        results["notes"].append(f"purge_jobs left {left} files of 100,000 finished jobs")
    out["accounting"] = accounting_cost()
    results["history"] = out


# -- the report ---------------------------------------------------------------------

def machine() -> list[str]:
    """What this machine is, without naming any of its paths."""
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    distro = ""
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    fs = filesystem(ROOT[0]) if ROOT else "?"
    return [f"CPU: {cpu}, {os.cpu_count()} cores; memory {mem}",
            f"OS: {distro or platform.system()}, kernel {platform.release()}; "
            f"Python {platform.python_version()}; benchmark filesystem: {fs}"]


def filesystem(path: Path) -> str:
    best, kind = "", "?"
    try:
        for line in open("/proc/mounts"):
            parts = line.split()
            mount = parts[1]
            if str(path).startswith(mount) and len(mount) >= len(best):
                best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def create_cost(root: Path, n: int = 500) -> float:
    """Microseconds to create one new file here: the cost every job pays several times."""
    probe = root / f"probe-{time.monotonic_ns()}"
    probe.mkdir()
    start = time.perf_counter()
    for i in range(n):
        os.close(os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    cost = (time.perf_counter() - start) / n * 1e6
    shutil.rmtree(probe)
    return cost


def tool_versions() -> str:
    found = []
    for argv in (["xargs", "--version"], [find_tsp() or "", "-V"], ["parallel", "--version"]):
        if not argv[0] or not shutil.which(argv[0]):
            continue
        text = subprocess.run(argv, capture_output=True, text=True)
        line = (text.stdout or text.stderr).splitlines()[0] if (text.stdout or text.stderr) \
            else argv[0]
        found.append(line.replace(" - a task queue system for the unix user.", ""))
    return "; ".join(found)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def table(results: dict, args) -> list[str]:
    rows = ["| measure | result | target | verdict |", "|---|---|---|---|"]
    dp = results.get("depth")
    if dp:
        base = dp[0]["per_job"]
        for row in dp:
            ratio = row["per_job"] / base
            ok = None
            if row is dp[-1] and len(dp) > 1:
                ok = ratio <= 1.5 and all(r["in_order"] for r in dp)
            rounds = ", ".join(f"{c * 1000:.2f}" for c in row["rounds"])
            rows.append(f"| depth: {row['queued']:,} queued, {row['jobs']} jobs run | "
                        f"{row['per_job'] * 1000:.2f} ms/job = {ratio:.2f} x (rounds: {rounds}); "
                        "priority order "
                        f"{'kept' if row['in_order'] else 'BROKEN'} | "
                        f"{TARGETS['depth'] if ok is not None else ''} | {verdict(ok)} |")
    sb = results.get("submit")
    if sb:
        rows.append(f"| jobjar.submit_job in one process | {fmt_rate(sb['api'])} jobs/s | "
                    f"{TARGETS['submit_api']} | {verdict(sb['api'] >= 5000)} |")
        if sb["venv"] is not None:
            mine, floor = sb["venv"]["submit"], sb["venv"]["pass"]
            low, high = mine["spread"]
            rows.append(f"| one `submit_job true` process (venv's installed script, .pyc made), "
                        f"median of {mine['runs']} | {fmt_ms(mine['median'])} (10-90 %: "
                        f"{fmt_ms(low)}-{fmt_ms(high)}; CPU {fmt_ms(mine['cpu'])}) | "
                        f"{TARGETS['submit_venv']} | {verdict(mine['median'] < 0.025)} |")
            rows.append(f"| (beside it, taking turns: the venv's `python3 -c pass`; left to Job "
                        f"Jar) | {fmt_ms(floor['median'])} (CPU {fmt_ms(floor['cpu'])}); "
                        f"{fmt_ms(mine['median'] - floor['median'])} (CPU "
                        f"{fmt_ms(mine['cpu'] - floor['cpu'])}) | | |")
        rows.append(f"| one bin/submit_job process, median | {fmt_ms(sb['bin'])} | "
                    f"{TARGETS['submit_proc']} | {verdict(sb['bin'] <= 0.040)} |")
        rows.append(f"| (for scale: `python3 -c pass` / `python3 -I -S -c pass`, the "
                    f"python3 running the benchmark) | "
                    f"{fmt_ms(sb['python'])} / {fmt_ms(sb['python_S'])} | | |")
        rows.append(f"| submit_job --from-file, {args.lines:,} lines | "
                    f"{sb['from_file']:.2f} s | {TARGETS['from_file']} | "
                    f"{verdict(sb['from_file'] < 2)} |")
    lt = results.get("latency")
    if lt:
        rows.append(f"| idle submit-to-start latency, median of {args.samples} | "
                    f"{fmt_ms(lt['job'])} (worker spawn at {fmt_ms(lt['spawn'])}; "
                    f"max {fmt_ms(lt['max'])}) | {TARGETS['latency']} | "
                    f"{verdict(lt['job'] <= 0.010)} |")
        if "tsp" in lt:
            rows.append(f"| (task-spooler latency, same method) | {fmt_ms(lt['tsp'])} | | |")
        cmd = lt.get("command")
        if cmd:
            low, high = cmd["spread"]
            rows.append(f"| idle submit-to-start through the command (venv `submit_job CMD` until "
                        f"CMD runs), median of {cmd['samples']} | {fmt_ms(cmd['job'])} (10-90 %: "
                        f"{fmt_ms(low)}-{fmt_ms(high)}; worker spawn at {fmt_ms(cmd['spawn'])}; "
                        f"the venv's `python3 -c pass`: {fmt_ms(cmd['python'])}) | "
                        f"{TARGETS['latency_cmd']} | {verdict(cmd['job'] < 0.030)} |")
    st = results.get("status")
    if st:
        rows.append(f"| system_status --json, {st['jobs']:,} jobs in the jar, median of 3 | "
                    f"{st['seconds']:.3f} s | {TARGETS['status']} | "
                    f"{verdict(st['seconds'] < 1)} |")
    pl = results.get("placement")
    if pl:
        off = pl["rates"]["off"]
        for variant, rate in pl["rates"].items():
            runs = ", ".join(f"{x:,.0f}" for x in pl["runs"][variant])
            cost = 1 - rate / off
            ok = None if variant == "off" else cost <= 0.10
            cpu = pl["cpu"][variant] * 1000
            rows.append(f"| throughput, placement {variant} ({args.jobs} jobs, {args.workers} "
                        f"workers) | {rate:,.0f} jobs/s"
                        f"{'' if ok is None else f' = {cost * 100:+.1f} % cost'} (runs: {runs}); "
                        f"worker CPU {cpu:.2f} ms/job "
                        f"| {TARGETS['placement'] if ok is not None else ''} | {verdict(ok)} |")
    hs = results.get("history")
    if hs:
        rows += history_rows(hs, results)
    if results.get("rss_kib"):
        mib = results["rss_kib"] / 1024
        rows.append(f"| worker peak RSS over the throughput runs | {mib:.1f} MiB | "
                    f"{TARGETS['rss']} | {verdict(mib < 40)} |")
    ex = results.get("executor")
    if ex:
        mine, pool = statistics.median(ex["jobjar"]), statistics.median(ex["pool"])
        runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(ex["jobjar"], ex["pool"]))
        rows.append(f"| jobjar.Executor().map, {ex['calls']:,} trivial calls, {args.workers} "
                    f"workers (vs ProcessPoolExecutor({args.workers}).map) | {mine:.2f} s vs "
                    f"{pool:.2f} s (runs: {runs}) | {TARGETS['executor_map']} | "
                    f"{verdict(mine <= pool + 1)} |")
        rows.append(f"| Executor().submit(f).result(), idle jar, median of {args.samples} | "
                    f"{fmt_ms(ex['call'])} (max {fmt_ms(ex['call_max'])}) | "
                    f"{TARGETS['executor_call']} | {verdict(ex['call'] < 0.150)} |")
    return rows


def history_rows(hs: dict, results: dict) -> list[str]:
    cpu = hs.get("cpu", {})

    def secs(value: float | None, label: str = "") -> str:
        if value is None:
            return "failed"
        return f"{value:.3f} s" + (f" (CPU {cpu[label]:.3f} s)" if label in cpu else "")

    rows = []
    via = " (venv's installed script)" if hs.get("list_via") == "venv" else ""
    for key, label in (("list", "default columns (reads each job file's command)"),
                       ("list_nocmd", "without the command column")):
        value = hs[key]
        rows.append(f"| list_jobs{via}, {hs['queued']:,} queued, {label}, median of 3 | "
                    f"{secs(value, key)} | {TARGETS['list_jobs']} | "
                    f"{verdict(None if value is None else value < 1)} |")
    if hs.get("list_pass") is not None:
        rows.append(f"| (beside it: the venv's `python3 -c pass`, median of 3) | "
                    f"{secs(hs['list_pass'], 'list_pass')} | - | - |")
    small, big = hs["status_small"], hs["status_big"]
    ok = None if small is None or big is None else big < 0.5 and big <= 1.5 * small
    ratio = f" = {big / small:.2f} x" if small and big else ""
    rows.append(f"| system_status --json, 100,000 finished vs 100 finished, median of 5 | "
                f"{secs(big, 'status_big')} vs {secs(small, 'status_small')}{ratio} | "
                f"{TARGETS['status_history']} | "
                f"{verdict(ok)} |")
    for key, label in (("page_old", "finished two days ago (outside the plots' window)"),
                       ("page_recent", "finished in the last 10 minutes (2,000 records read)")):
        value = hs.get(key)
        rows.append(f"| system_status --html, 100,000 jobs {label}, median of 3 | "
                    f"{secs(value, key)} | {TARGETS['page']} | "
                    f"{verdict(None if value is None else value < 1)} |")
    rows.append(f"| purge_jobs --older-than 1d, 100,000 finished jobs | "
                f"{secs(hs['purge'], 'purge')} | "
                f"{TARGETS['purge']} | "
                f"{verdict(None if hs['purge'] is None else hs['purge'] < 30)} |")
    tp = results.get("throughput")
    per_job = None
    if tp:  # a worker's time per job: workers / (jobs/s)
        per_job = tp["workers"] / tp["rates"]["jobjar"] if tp.get("workers") else None
    share = f" = {hs['accounting'] / per_job * 100:.2f} % of a job's time" if per_job else ""
    rows.append(f"| accounting: worker CPU added per job | {hs['accounting'] * 1e6:.1f} us"
                f"{share} | {TARGETS['accounting']} | "
                f"{verdict(hs['accounting'] / per_job <= 0.05 if per_job else None)} |")
    return rows


def report(results: dict, args, elapsed: float) -> str:
    commit = subprocess.run(["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(TOP), "status", "--porcelain", "jobjar"],
                           capture_output=True, text=True).stdout.strip()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    options = " ".join(sys.argv[1:]) or "(defaults)"
    lines = [f"### Run of {when} (commit {commit}{' + local changes' if dirty else ''})", "",
             *[f"- {m}" for m in machine()], f"- peers: {tool_versions() or 'none'}",
             f"- creating one file on the benchmark filesystem: "
             f"{results['create_us'][0]:.0f} us at the start, {results['create_us'][1]:.0f} us "
             "at the end of the run (every job creates several)",
             f"- command: `python3 bench/run.py {options}`; took {elapsed:.0f} s", "",
             *table(results, args)]
    if results.get("throughput"):
        lines += throughput_rows(results["throughput"], args)
    lines += fileserver.rows(results)
    for note in results["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=2000, help="throughput jobs (default 2000)")
    p.add_argument("--workers", type=int, default=2, help="workers / slots (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="one throughput run, depths 100 and 10,000 only, fewer samples")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    p.add_argument("--no-write", action="store_true", help=f"do not append to {DOC.name}")
    p.add_argument("--dir", help="where the temporary jars go (default: the temp directory)")
    args = p.parse_args()
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        p.error(f"unknown section(s): {', '.join(sorted(only - set(SECTIONS)))}")
    repeat = 1 if args.quick else 5
    sizes = [100, 10_000] if args.quick else [100, 10_000, 100_000]
    args.lines = 10_000
    args.samples = 10 if args.quick else 20
    results: dict = {"notes": []}
    root = Path(tempfile.mkdtemp(prefix="jobjar-bench-", dir=args.dir))
    ROOT.append(root)
    began = time.perf_counter()
    saved_env = dict(os.environ)
    try:
        results["create_us"] = [create_cost(root)]
        if "throughput" in only:
            throughput(root, args.jobs, args.workers, repeat, results)
        if "submit" in only:
            submission(root, 2000 if args.quick else 10_000, 20 if args.quick else 60,
                       args.lines, results)
        if "latency" in only:
            latency(root, args.samples, results)
        deep = None
        if "depth" in only:
            depth(root, sizes, 300, 1 if args.quick else 3, results)
            if results["depth"][-1]["queued"] >= 100_000:
                deep = results["depth"][-1]["jar"]
        if "status" in only:
            status(root, deep, 100_000, results)
        if "placement" in only:
            placement(root, args.jobs, args.workers, repeat, results)
        if "executor" in only:
            executor(root, 10_000, args.workers, repeat, args.samples, results)
        if "history" in only:
            history(root, deep, results)
        if "fileserver" in only:
            say("fileserver: operations per job and per idle minute, jar over sshfs")
            fileserver.measure(root, base_env(root), results)
        results["create_us"].append(create_cost(root))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(root, ignore_errors=True)
    text = report(results, args, time.perf_counter() - began)
    print(text)
    if not args.no_write:
        with open(DOC, "a", encoding="utf-8") as out:
            out.write("\n" + text)
        say(f"appended to {DOC.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
