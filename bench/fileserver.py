"""The file server's side of Job Jar: operations per job and per idle worker minute.

A jar on a shared filesystem costs the file server something for every
metadata and data operation its commands and workers make.  This section of
``bench/run.py`` counts them on a jar mounted over ``sshfs`` from an ``sshd``
on the loopback address, two ways:

* **calls**: the system calls on the jar's paths, from ``strace -f -y`` of
  the submitting process and of the worker (with its jobs): what the
  client asks, before any client cache.  An NFS client with ``noac`` sends
  about this many;
* **sent**: the SFTP requests ``sshfs`` sends to the server (its
  ``sshfs_debug`` log): what one real network filesystem client, with its
  caches on, actually asks the server for.

The phases, each in its own window:

1. *submit*: ``jobjar.submit_job("true")``, FS_JOBS times, with no worker
   running;
2. *run*: FS_RUNS jobs submitted one at a time to an idle worker, each
   waited for (on the server's side of the mount, which costs no request);
   the worker's share is the window less the submissions (phase 1);
3. *idle pass*: one pass of an idle worker's loop (control files, holds,
   the queue listings, waiting jobs), FS_POKES times: the worker sleeps
   with ``JJ_PAUSE_TIME`` and ``JJ_HEARTBEAT`` of a day, and a dot-file
   created and removed in ``unclaimed/`` (never a job) wakes it for
   exactly one pass; the pokes' own requests, counted with no worker, are
   taken off;
4. *heartbeat*: a worker with ``JJ_HEARTBEAT=2`` and nothing else to do;
   the window divided by the number of heartbeats it made; then again with
   a load average (``JJ_TEST_LOADAVG``) that moves before every beat, so
   that every beat also writes ``nodes/NODE.yaml``: the difference is one
   node file write.

An idle worker's minute is then ``60 / JJ_PAUSE_TIME`` passes, ``60 /
JJ_HEARTBEAT`` heartbeats and one node file write per
``max(JJ_HEARTBEAT, worker.NODE_REFRESH)`` seconds, at the defaults.
``waiting/`` is given an old modification time before the worker starts,
as in a jar whose ``waiting/`` has been empty for a while.  The mount's caches are
set to expire after 1 s (``dcache_timeout=1``; the kernel's are 1 s too)
and the pokes come 1.5 s apart, so that every pass finds them expired, as a
pass does a minute after the last one.

Everything is undone at the end, whatever happens: the workers are stopped
by pid, the mount is unmounted, ``sshd`` is stopped by pid.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
BIN = TOP / "bin"
SSHD = "/usr/sbin/sshd"
#: Jobs submitted with no worker running (the submission's cost).
FS_JOBS = 20
#: Jobs run one at a time by an idle worker (the worker's cost per job).
FS_RUNS = 10
#: Idle passes measured (each woken by a poke).
FS_POKES = 6
#: Seconds between pokes: longer than every cache of the mount.
POKE_GAP = 1.5
#: ``JJ_HEARTBEAT`` of the heartbeat phase: longer than every cache of the mount.
BEAT_EVERY = "2"
#: Seconds of heartbeats measured.
BEAT_WINDOW = 8.0
#: ``JJ_PAUSE_TIME`` / ``JJ_HEARTBEAT`` that never come round during a window.
QUIET = "1d"

#: The kinds of operation, in the table's order.
KINDS = ("open/create", "close", "stat", "open dir", "read dir", "read", "write", "rename",
         "unlink", "mkdir", "rmdir", "set attributes", "symlink", "readlink", "other")
#: SFTP requests (as ``sshfs_debug`` names them) by kind.  EXTENDED is OpenSSH's
#: ``posix-rename`` here (the jar calls neither ``statvfs`` nor ``fsync``).
SFTP_KINDS = {"OPEN": "open/create", "CLOSE": "close", "LSTAT": "stat", "STAT": "stat",
              "FSTAT": "stat", "OPENDIR": "open dir", "READDIR": "read dir", "READ": "read",
              "WRITE": "write", "RENAME": "rename", "EXTENDED": "rename", "REMOVE": "unlink",
              "MKDIR": "mkdir", "RMDIR": "rmdir", "SETSTAT": "set attributes",
              "FSETSTAT": "set attributes", "SYMLINK": "symlink", "READLINK": "readlink"}
#: System calls by kind; the rest that name a path of the jar are "other".
CALL_KINDS = {
    **dict.fromkeys(("open", "openat", "openat2", "creat"), "open/create"),
    "close": "close",
    **dict.fromkeys(("stat", "lstat", "fstat", "newfstatat", "statx", "access", "faccessat",
                     "faccessat2", "fstatat64", "stat64", "lstat64", "fstat64"), "stat"),
    "getdents64": "read dir", "getdents": "read dir",
    **dict.fromkeys(("read", "pread64", "readv", "preadv", "preadv2"), "read"),
    **dict.fromkeys(("write", "pwrite64", "writev", "pwritev", "pwritev2"), "write"),
    **dict.fromkeys(("rename", "renameat", "renameat2"), "rename"),
    **dict.fromkeys(("unlink", "unlinkat"), "unlink"),
    **dict.fromkeys(("mkdir", "mkdirat"), "mkdir"),
    "rmdir": "rmdir",
    **dict.fromkeys(("utimensat", "utime", "utimes", "futimesat", "chmod", "fchmod",
                     "fchmodat", "chown", "fchown", "fchownat", "lchown", "truncate",
                     "ftruncate"), "set attributes"),
    **dict.fromkeys(("symlink", "symlinkat"), "symlink"),
    **dict.fromkeys(("readlink", "readlinkat"), "readlink"),
}
_SFTP_LINE = re.compile(rb"^\[\d+\] ([A-Z_]+)", re.M)
_CALL_LINE = re.compile(r"^(?:\d+ +)?([a-z0-9_]+)\((.*)$")
_CWD = re.compile(r"AT_FDCWD<([^>]*)>")
#: Calls that name a descriptor of the jar but never reach the server.
LOCAL_CALLS = frozenset(("dup", "dup2", "dup3", "fcntl", "lseek", "fchdir", "getcwd", "mmap",
                         "ioctl", "fadvise64"))

#: The submitting process: one job per "submit" line, one poke per "poke" line.
SUBMITTER = r"""
import os, sys
import jobjar
from jobjar.layout import Jar
jar = Jar.from_config()
jar.ensure()
print("ready", flush=True)
for n, line in enumerate(sys.stdin):
    if line.strip() == "submit":
        print(jobjar.submit_job("true"), flush=True)
    elif line.strip() == "poke":
        poke = os.path.join(jar.unclaimed, f".poke.{n}")
        os.close(os.open(poke, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(poke)
        print("poked", flush=True)
"""


def missing() -> str | None:
    """Why the section cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "needs root (sshd on the loopback address, a FUSE mount)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    for tool in ("sshfs", "ssh-keygen", "fusermount", "strace"):
        if not shutil.which(tool) and not (tool == "fusermount" and shutil.which("fusermount3")):
            return f"{tool} is not installed"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed"
    return None


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"fileserver: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as src:
            return src.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Mount:
    """``sshd`` on 127.0.0.1 and one ``sshfs`` mount of ``export``, its requests logged."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.export = root / "export"
        self.point = root / "mnt"
        self.keys = root / "ssh"
        self.log = root / "sshfs.log"
        self.sshd: subprocess.Popen | None = None
        self.sshfs: subprocess.Popen | None = None

    def start(self) -> None:
        for path in (self.export, self.point, self.keys):
            path.mkdir(parents=True)
        os.chmod(self.keys, 0o700)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(self.keys / key)], check=True, capture_output=True)
        shutil.copy(self.keys / "client_key.pub", self.keys / "authorized_keys")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = self.keys / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {self.keys / 'host_key'}",
            f"AuthorizedKeysFile {self.keys / 'authorized_keys'}",
            f"PidFile {self.keys / 'sshd.pid'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
        self.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def listening() -> bool:
            if self.sshd.poll() is not None:
                raise RuntimeError("fileserver: sshd exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        _wait(listening, 20, "sshd to listen")
        options = [f"port={port}", f"IdentityFile={self.keys / 'client_key'}",
                   "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "BatchMode=yes",
                   "LogLevel=ERROR", "sshfs_debug", "dcache_timeout=1"]
        usage = subprocess.run(["sshfs", "-h"], capture_output=True, text=True)
        if "no_contain_symlinks" in usage.stdout + usage.stderr:
            options.append("no_contain_symlinks")  # claimed/ links have ".." in them
        with open(self.log, "wb") as log:
            self.sshfs = subprocess.Popen(
                ["sshfs", "-f", "-o", ",".join(options), f"root@127.0.0.1:{self.export}",
                 str(self.point)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def mounted() -> bool:
            if self.sshfs.poll() is not None:
                raise RuntimeError("fileserver: sshfs exited: "
                                   + self.log.read_text(errors="replace")[-300:])
            return os.path.ismount(self.point)

        _wait(mounted, 20, "the sshfs mount")

    def mark(self) -> int:
        """Where the request log is now (a window starts or ends here)."""
        time.sleep(0.2)  # the last requests' lines are written
        return self.log.stat().st_size

    def requests(self, start: int, end: int) -> collections.Counter:
        """SFTP requests sent between two marks, by kind."""
        with open(self.log, "rb") as log:
            log.seek(start)
            text = log.read(end - start)
        found: collections.Counter = collections.Counter()
        for kind in _SFTP_LINE.findall(text):
            found[SFTP_KINDS.get(kind.decode(), "other")] += 1
        return found

    def close(self) -> None:
        """Unmount and stop sshfs and sshd (by pid); never raises."""
        if self.sshfs is not None:
            for tool in ("fusermount3", "fusermount"):  # also a mount whose sshfs died
                if shutil.which(tool):
                    subprocess.run([tool, "-u", "-z", str(self.point)], capture_output=True)
                    break
            _stop(self.sshfs)
        if self.sshd is not None:
            _stop(self.sshd)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Trace:
    """``strace -f -y`` attached to one process for one window; its calls on the jar, by kind."""

    def __init__(self, pid: int, out: Path, jar: Path) -> None:
        self.out, self.jar = out, str(jar)
        self.errors = out.with_suffix(".err")
        with open(self.errors, "w") as err:
            self.proc = subprocess.Popen(["strace", "-f", "-y", "-s", "0", "-o", str(out),
                                          "-p", str(pid)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        _wait(lambda: "attached" in self.errors.read_text() or self.proc.poll() is not None,
              20, "strace to attach")
        if self.proc.poll() is not None:
            raise RuntimeError("fileserver: strace cannot attach: "
                               + self.errors.read_text().strip()[-200:])

    def stop(self) -> collections.Counter:
        """Detach (SIGINT) and count the calls that named a path of the jar."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        found: collections.Counter = collections.Counter()
        for line in self.out.read_text(errors="replace").splitlines():
            match = _CALL_LINE.match(line)
            if not match or match.group(1) in LOCAL_CALLS:
                continue  # "<... resumed>", signals, exits; calls the server never sees
            name, args = match.groups()
            cwd = _CWD.search(args)  # -y shows the working directory: not a path named
            args = _CWD.sub("AT_FDCWD", args)
            relative = cwd is not None and self.jar in cwd.group(1) and ', "/' not in args
            if self.jar not in args and not relative:
                continue  # a call off the jar
            kind = CALL_KINDS.get(name, "other")
            if kind == "open/create" and "O_DIRECTORY" in args:
                kind = "open dir"
            elif kind == "unlink" and "AT_REMOVEDIR" in args:
                kind = "rmdir"
            found[kind] += 1
        return found


class Submitter:
    """A Python process that submits jobs (and pokes) on request, already imported."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SUBMITTER], env=env, cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask_nothing = self._answer()

    def _answer(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fileserver: the submitting process died")
        return line.strip()

    def ask(self, what: str) -> str:
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _start_worker(env: dict[str, str], **settings: str) -> int:
    out = subprocess.run([str(BIN / "start_worker")], env={**env, **settings}, check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip().rsplit(".", 1)[1])


def _stop_worker(pid: int) -> None:
    """SIGTERM (an idle worker stops at once), then SIGKILL after 15 s; by pid only."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _scaled(counts: collections.Counter, by: float) -> dict[str, float]:
    return {kind: value / by for kind, value in counts.items()}


def _less(a: dict[str, float], b: dict[str, float], times: float = 1.0) -> dict[str, float]:
    return {kind: a.get(kind, 0) - times * b.get(kind, 0) for kind in set(a) | set(b)}


def measure(root: Path, env: dict[str, str], results: dict) -> None:
    """Run the four phases; ``results["fileserver"]`` gets the counts per kind."""
    why = missing()
    if why:
        results["notes"].append(f"fileserver: not measured: {why}")
        return
    from jobjar.config import PARAMETERS

    base = root / "fileserver"
    mount = Mount(base)
    pids: list[int] = []
    submitter: Submitter | None = None
    traces: list[Trace] = []
    try:
        mount.start()
        jar = mount.point / "jar"
        server_jar = mount.export / "jar"
        env = {**env, "JJ_HOME": str(jar), "JJ_PAUSE_TIME": QUIET, "JJ_HEARTBEAT": QUIET}
        submitter = Submitter(env, base)
        out: dict[str, dict] = {}

        # 1. submission, no worker
        trace = Trace(submitter.proc.pid, base / "submit.strace", jar)
        traces.append(trace)
        start = mount.mark()
        for _ in range(FS_JOBS):
            submitter.ask("submit")
        sent = mount.requests(start, mount.mark())
        out["submit"] = {"calls": _scaled(trace.stop(), FS_JOBS), "sent": _scaled(sent, FS_JOBS)}

        # the pokes' own cost, no worker
        start = mount.mark()
        for _ in range(3):
            submitter.ask("poke")
        poke = _scaled(mount.requests(start, mount.mark()), 3)

        # 2. one job at a time, idle worker (the queue drained first); waiting/ has
        # been empty and unchanged for a while, as in a jar that uses no dependencies
        old = time.time() - 600
        os.utime(server_jar / "waiting", (old, old))
        pids.append(_start_worker(env))
        _wait(lambda: len(os.listdir(server_jar / "completed")) == FS_JOBS, 120,
              "the queued jobs to finish")
        time.sleep(POKE_GAP)
        worker = Trace(pids[-1], base / "run.strace", jar)
        traces.append(worker)
        start = mount.mark()
        for _ in range(FS_RUNS):
            name = submitter.ask("submit")
            _wait((server_jar / "completed" / name).exists, 60, "a job to finish")
        time.sleep(0.3)  # its last pass, back to sleep
        sent = _less(_scaled(mount.requests(start, mount.mark()), FS_RUNS), out["submit"]["sent"])
        out["run"] = {"calls": _scaled(worker.stop(), FS_RUNS), "sent": sent}

        # 3. idle passes, each woken by a poke
        time.sleep(POKE_GAP)
        worker = Trace(pids[-1], base / "pass.strace", jar)
        traces.append(worker)
        start = mount.mark()
        for _ in range(FS_POKES):
            submitter.ask("poke")
            time.sleep(POKE_GAP)
        sent = _less(_scaled(mount.requests(start, mount.mark()), FS_POKES), poke)
        out["pass"] = {"calls": _scaled(worker.stop(), FS_POKES), "sent": sent}
        _stop_worker(pids.pop())

        # 4. heartbeats, the node's figures steady, then moving at every beat
        load = base / "loadavg"
        load.write_text("0.00 0.00 0.00 1/1 1\n")
        beat_env = {**env, "JJ_HEARTBEAT": BEAT_EVERY, "JJ_TEST_LOADAVG": str(load)}
        for phase in ("beat", "publish"):
            pids.append(_start_worker(beat_env))
            time.sleep(1.5)
            worker = Trace(pids[-1], base / f"{phase}.strace", jar)
            traces.append(worker)
            start = mount.mark()
            deadline = time.monotonic() + BEAT_WINDOW
            while time.monotonic() < deadline:  # "publish": a new load at every beat
                if phase == "publish":
                    load.write_text(f"{time.monotonic() % 1000:.2f} 0.00 0.00 1/1 1\n")
                time.sleep(0.2)
            sent = mount.requests(start, mount.mark())
            calls = worker.stop()
            text = (base / f"{phase}.strace").read_text(errors="replace")
            beats = max(1, len(re.findall(r"utimensat\(.*heartbeat", text)))
            out[phase] = {"calls": _scaled(calls, beats), "sent": _scaled(sent, beats)}
            _stop_worker(pids.pop())
        for way in ("calls", "sent"):  # a node file's write: what a beat that writes adds
            out["publish"][way] = _less(out["publish"][way], out["beat"][way])

        pause = float(PARAMETERS["JJ_PAUSE_TIME"][1])
        heartbeat = float(PARAMETERS["JJ_HEARTBEAT"][1])
        refresh = max(heartbeat, _node_refresh())
        out["idle"] = {
            way: {kind: out["pass"][way].get(kind, 0) * 60 / pause
                  + out["beat"][way].get(kind, 0) * 60 / heartbeat
                  + out["publish"][way].get(kind, 0) * 60 / refresh for kind in KINDS}
            for way in ("calls", "sent")}
        out["settings"] = {"pause": pause, "heartbeat": heartbeat, "refresh": refresh}
        results["fileserver"] = out
    finally:
        for trace in traces:
            if trace.proc.poll() is None:
                trace.proc.kill()
                trace.proc.wait(10)
        for pid in pids:
            _stop_worker(pid)
        if submitter is not None:
            submitter.close()
        mount.close()


def _node_refresh() -> float:
    """Seconds between two writes of an idle node's file (at every heartbeat: 0)."""
    from jobjar import worker

    return float(getattr(worker, "NODE_REFRESH", 0.0))


def _total(counts: dict[str, float]) -> float:
    return sum(counts.values())


def _fmt(value: float) -> str:
    if abs(value) < 0.05:
        return "0"
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


#: The protocol's floor per job (docs/nfs.md derives it): kind -> operations.  Submit:
#: create, write, close, rename; find: one listing (open dir, read dir, close); claim:
#: rename; claimed/ link: symlink, unlink; scratch: mkdir, rmdir; run: open, read, close
#: of the job file; record: create, write, close, rename; completed/: rename.
MINIMUM = {"open/create": 3, "close": 4, "open dir": 1, "read dir": 1, "read": 1, "write": 2,
           "rename": 4, "unlink": 1, "mkdir": 1, "rmdir": 1, "symlink": 1}


def rows(results: dict) -> list[str]:
    """The table: per job (submission, worker) and per idle minute, calls / requests sent."""
    fs = results.get("fileserver")
    if not fs:
        return []
    settings = fs["settings"]
    lines = ["", "File-server operations on a jar over sshfs (calls: system calls on the jar, "
             "strace; sent: SFTP requests sshfs sent to the server)", "",
             "| operation | submit, per job (calls / sent) | worker, per job (calls / sent) | "
             "one job in all (calls / sent) | protocol minimum per job | idle worker per "
             f"minute (calls / sent; JJ_PAUSE_TIME={settings['pause']:g} s, JJ_HEARTBEAT="
             f"{settings['heartbeat']:g} s) |", "|---|---|---|---|---|---|"]
    job = {way: {k: fs["submit"][way].get(k, 0) + fs["run"][way].get(k, 0) for k in KINDS}
           for way in ("calls", "sent")}

    def pair(counts: dict[str, dict[str, float]], kind: str | None) -> str:
        if kind is None:
            return f"{_fmt(_total(counts['calls']))} / {_fmt(_total(counts['sent']))}"
        return f"{_fmt(counts['calls'].get(kind, 0))} / {_fmt(counts['sent'].get(kind, 0))}"

    for kind in KINDS:
        if not any(fs[p][w].get(kind, 0) for p in ("submit", "run", "idle")
                   for w in ("calls", "sent")) and kind not in MINIMUM:
            continue
        lines.append(f"| {kind} | {pair(fs['submit'], kind)} | {pair(fs['run'], kind)} | "
                     f"{pair(job, kind)} | {MINIMUM.get(kind, 0)} | {pair(fs['idle'], kind)} |")
    lines.append(f"| **all** | {pair(fs['submit'], None)} | {pair(fs['run'], None)} | "
                 f"{pair(job, None)} | {sum(MINIMUM.values())} | {pair(fs['idle'], None)} |")
    lines.append(f"| (idle minute = {60 / settings['pause']:g} pass of the loop + "
                 f"{60 / settings['heartbeat']:g} heartbeats + "
                 f"{60 / settings['refresh']:g} node file writes) | | | | | pass: "
                 f"{pair(fs['pass'], None)}; heartbeat: {pair(fs['beat'], None)}; "
                 f"node file: {pair(fs['publish'], None)} |")
    return lines
