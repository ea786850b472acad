"""A private, single-node Slurm on loopback, for testing pilot workers inside it.

``PrivateSlurm`` starts ``munged`` (with its own key and socket), ``slurmctld``
and ``slurmd`` from the distribution's packages, on free loopback ports, with
every file under one temporary directory, and stops them by pid.  Nothing of
the machine's own Slurm or munge set-up is read or changed: commands find this
cluster through ``SLURM_CONF`` (``env()``).  ``missing_support`` says why it
cannot run here, so the test can skip loudly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import pid_alive, wait_for

DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld",
           "slurmd": "/usr/sbin/slurmd"}
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel")


def missing_support() -> str | None:
    """Why a private Slurm cannot start here, or ``None``."""
    if os.geteuid() != 0:
        return "needs root (slurmd runs jobs as their users)"
    for name, path in DAEMONS.items():
        if not os.access(path, os.X_OK):
            return f"{name} is not installed (apt-get install slurm-wlm munge)"
    for name in CLIENTS:
        if shutil.which(name) is None:
            return f"{name} is not installed (apt-get install slurm-client)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateSlurm:
    """One controller and one compute node (this machine), all files under ``root``."""

    def __init__(self, root: Path, kill_wait: int = 3) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.socket = root / "run" / "munge.socket"
        self.kill_wait = kill_wait
        self.pid_files = {"munged": root / "munge" / "pid", "slurmctld": root / "ctld.pid",
                          "slurmd": root / "slurmd.pid"}

    def env(self, extra: dict | None = None) -> dict:
        """An environment whose Slurm commands talk to this cluster."""
        env = {"SLURM_CONF": str(self.conf), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        env.update(extra or {})
        return env

    def start(self) -> None:
        """Write the configuration, start the three daemons, wait for an idle node."""
        root = self.root
        for sub in ("state", "spool", "log", "munge", "run"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        (root / "munge").chmod(0o700)
        (root / "run").chmod(0o755)  # every user's commands reach munged's socket
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        subprocess.run([DAEMONS["munged"], f"--socket={self.socket}", f"--key-file={key}",
                        f"--pid-file={self.pid_files['munged']}",
                        f"--log-file={root / 'munge' / 'log'}",
                        f"--seed-file={root / 'munge' / 'seed'}", "--force"],
                       check=True, capture_output=True, timeout=30)
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(self._config(host))
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([DAEMONS[daemon], "-f", str(self.conf)], check=True,
                           capture_output=True, env=self.env(), timeout=30)
        wait_for(self._idle, 60, interval=0.5, message="the private Slurm's node to be idle")

    def _config(self, host: str) -> str:
        root, cpus = self.root, os.cpu_count() or 1
        return "\n".join([
            "ClusterName=jobjartest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", f"AuthInfo=socket={self.socket}", "CredType=cred/munge",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={self.pid_files['slurmctld']}",
            f"SlurmdPidFile={self.pid_files['slurmd']}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "MpiDefault=none",
            "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU", "ReturnToService=2",
            f"KillWait={self.kill_wait}", "OverTimeLimit=0", "MinJobAge=2",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
            f"PartitionName=jobjar Nodes={host} Default=YES MaxTime=INFINITE State=UP",
            ""])

    def _idle(self) -> bool:
        result = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env(),
                                capture_output=True, text=True, timeout=30)
        return result.returncode == 0 and result.stdout.strip() in ("idle", "mix", "alloc")

    def jobs(self) -> list[str]:
        """The job ids (array tasks included) the cluster still holds, any state."""
        result = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=self.env(),
                                capture_output=True, text=True, timeout=30)
        return result.stdout.split("\n") if result.stdout.strip() else []

    def stop(self) -> None:
        """Stop the daemons by pid (SIGTERM, then SIGKILL)."""
        pids = []
        for path in self.pid_files.values():
            try:
                pids.append(int(path.read_text().strip()))
            except (OSError, ValueError):
                continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
            time.sleep(0.1)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
