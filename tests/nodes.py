"""Simulated cluster nodes on one machine, and a real network filesystem.

A ``Node`` is a set of fresh UTS, PID and mount namespaces made with
``unshare``: it has its own host name (so Job Jar's default node name differs
per node, without ``JJ_NODE``) and its own process ids, so that pids collide
across nodes exactly as on a cluster.  Commands run inside with ``nsenter``.
Killing the namespace's init process (pid 1 inside) kills every process of
the node at once, which is how a crashed machine looks to the others.

``SshServer`` runs ``sshd`` on the loopback address with its own keys; each
node mounts the shared directory over itself with ``sshfs`` in its own mount
namespace, caches on, so every node has its own stale view, as NFS clients
do.  ``missing_support`` says why any of this cannot run here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import wait_for

SSHD = "/usr/sbin/sshd"

#: pid 1 of a node: reaps every orphan (a detached worker that dies must not
#: linger as a zombie, which would look alive), and never exits by itself.
INIT = """
import os, time
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.2)
    except InterruptedError:
        pass
"""


class NoFuse(RuntimeError):
    """FUSE exists on paper but mounting fails (a container without the right)."""


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kwargs)


def missing_support(network: bool = False) -> str | None:
    """Why namespaces (and, with ``network``, sshd + sshfs) cannot be used here."""
    if os.geteuid() != 0:
        return "simulated nodes need root (unshare --pid, mount)"
    for tool in ("unshare", "nsenter", "hostname", "mountpoint"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    probe = _run(["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c",
                  "hostname jjprobe && test $$ = 1"])
    if probe.returncode != 0:
        return f"unshare does not work here: {probe.stderr.strip() or probe.returncode}"
    if not network:
        return None
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this machine or container)"
    for tool in ("sshfs", "ssh-keygen", "fusermount"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install openssh-server sshfs)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    return None


def sshfs_contains_symlinks() -> bool:
    """Does this sshfs refuse ``..`` symlink targets by default (``contain_symlinks``)?"""
    usage = _run(["sshfs", "-h"])
    return "no_contain_symlinks" in usage.stdout + usage.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SshServer:
    """``sshd`` on 127.0.0.1 with its own host key and one authorized key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.key = root / "client_key"

    def start(self, inside: Node | None = None) -> None:
        """Start sshd; ``inside`` a node, its sessions run on that node (its host name, pids)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for key in ("host_key", "client_key"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / key)],
                 check=True)
        shutil.copy(self.root / "client_key.pub", self.root / "authorized_keys")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation
        self.port = free_port()
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1",
            f"HostKey {self.root / 'host_key'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"PidFile {self.root / 'sshd.pid'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
        log = open(self.root / "sshd.log", "w")
        args = [SSHD, "-D", "-e", "-f", str(config)]
        self.proc = subprocess.Popen(inside.command(args) if inside else args, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: " + (self.root / "sshd.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(listening, 20, 0.05, "sshd to listen")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def sshfs_command(self, export: Path, mountpoint: Path, strict: bool = False) -> list[str]:
        """Mount ``export`` at ``mountpoint``; sshfs's default caches stay on.

        Relative ``..`` symlinks must work (``claimed/`` links are made of
        them): sshfs builds that refuse such targets by default get
        ``no_contain_symlinks``, unless ``strict`` asks for that default.
        """
        options = [f"port={self.port}", f"IdentityFile={self.key}", "StrictHostKeyChecking=no",
                   "UserKnownHostsFile=/dev/null", "BatchMode=yes", "LogLevel=ERROR"]
        if not strict and sshfs_contains_symlinks():
            options.append("no_contain_symlinks")
        options = ",".join(options)
        return ["sshfs", "-o", options, f"root@127.0.0.1:{export}", str(mountpoint)]


class Node:
    """One simulated machine: UTS + PID + mount namespaces with a host name."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = dict(env)
        self.env.pop("JJ_NODE", None)  # the node name must come from the host name
        self.unshare: subprocess.Popen | None = None
        self.init_pid = 0  # pid 1 of the namespace, as seen from the host
        self.mounts: list[Path] = []

    def start(self) -> None:
        self.unshare = subprocess.Popen(
            ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "sh", "-c",
             'hostname "$1" && exec "$2" -c "$3"', "sh", self.name, sys.executable, INIT],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def child() -> int:
            if self.unshare.poll() is not None:
                raise RuntimeError(f"unshare for {self.name} exited {self.unshare.returncode}")
            try:
                kids = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
                found = kids.read_text().split()
            except OSError:
                return 0
            return int(found[0]) if found else 0

        self.init_pid = wait_for(child, 10, 0.05, f"node {self.name} to start")

        def exec_done() -> bool:  # "hostname" has run and init replaced the shell
            try:
                exe = Path(f"/proc/{self.init_pid}/exe").resolve()
                return exe == Path(sys.executable).resolve()
            except OSError:
                return False

        wait_for(exec_done, 10, 0.05, f"node {self.name}'s init")
        # exactly one command here, so that every node's pids run in step
        got = self.run(["hostname"]).stdout.strip()
        if got != self.name:
            raise RuntimeError(f"node {self.name} has host name {got!r}")

    def command(self, args: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.init_pid), "-u", "-p", "-m", "--", *args]

    def run(self, args: list[str], env: dict | None = None, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on this node."""
        result = subprocess.run(self.command(args), env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"on {self.name}: {args} failed ({result.returncode}): "
                                 f"{result.stderr.strip()}")
        return result

    def popen(self, args: list[str], env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.command(args), env={**self.env, **(env or {})},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def mount_sshfs(self, server: SshServer, export: Path, mountpoint: Path,
                    strict: bool = False) -> None:
        """Mount the shared directory over ``mountpoint``, seen by this node only."""
        result = self.run(server.sshfs_command(export, mountpoint, strict))
        if result.returncode != 0:
            error = result.stderr.strip()
            if "fuse" in error.lower():
                raise NoFuse(f"sshfs cannot mount here: {error}")
            raise RuntimeError(f"sshfs failed on {self.name}: {error}")
        self.mounts.append(mountpoint)
        if self.run(["mountpoint", "-q", str(mountpoint)]).returncode != 0:
            raise RuntimeError(f"sshfs did not mount {mountpoint} on {self.name}")

    def host_pid(self, ns_pid: int) -> int | None:
        """The host's pid of this node's process ``ns_pid``."""
        try:
            mine = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except OSError:
            return None
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != mine:
                    continue
                with open(f"/proc/{entry}/status") as status:
                    for line in status:
                        if line.startswith("NSpid:") and int(line.split()[-1]) == ns_pid:
                            return int(entry)
            except (OSError, ValueError):
                continue
        return None

    def alive(self) -> bool:
        return self.unshare is not None and self.unshare.poll() is None

    def kill(self) -> None:
        """Crash the node: SIGKILL its pid 1, which kills everything inside."""
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.unshare is not None:
            try:
                self.unshare.wait(20)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait(10)

    def shutdown(self) -> None:
        """Unmount (lazily, the node's processes may still use it), then kill."""
        if self.alive():
            for mountpoint in self.mounts:
                self.run(["fusermount", "-u", "-z", str(mountpoint)])
        self.kill()
