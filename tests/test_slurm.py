"""Pilot workers inside a real Slurm: ``examples/pilots.sbatch`` as a job array.

A private single-node Slurm (``tests/slurm.py``) runs the example script as an
ordinary user (workers refuse root) on a shared jar.  The pilots drain a few
hundred jobs exactly once and end by themselves; then an allocation that is
cancelled while its pilots run jobs leaves those jobs to ``recover_jobs``, and
a second array finishes them: nothing is lost, nothing runs to the end twice.
Skips loudly where Slurm cannot start (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, wait_for
from slurm import PrivateSlurm, missing_support

SCRIPT = ROOT / "examples" / "pilots.sbatch"


@pytest.fixture
def slurm(team):
    why = missing_support()
    if why:
        pytest.skip(f"SLURM TEST SKIPPED: {why}")
    cluster = PrivateSlurm(team.root / "slurm")
    try:
        cluster.start()
    except (subprocess.SubprocessError, AssertionError) as exc:
        cluster.stop()
        pytest.skip(f"SLURM TEST SKIPPED: cannot start a private Slurm here: {exc}")
    try:
        yield cluster
    finally:
        subprocess.run(["scancel", "--full", "-u", team.names["ann"]], env=cluster.env(),
                       capture_output=True)
        wait_for(lambda: not cluster.jobs(), 60, interval=0.5, message="Slurm to empty")
        cluster.stop()


def sbatch(team, cluster: PrivateSlurm, *args: str) -> str:
    """``sbatch --parsable ARGS examples/pilots.sbatch`` as ann, in her home; the job id."""
    script = team.root / "pilots.sbatch"
    if not script.exists():
        shutil.copy(SCRIPT, script)
        script.chmod(0o755)
    env = team.env("ann", cluster.env({"PATH": f"{team.code / 'bin'}:/usr/bin:/bin",
                                       "JJ_PILOT_MARGIN": "5"}))
    result = subprocess.run(["sbatch", "--parsable", *args, str(script)], env=env,
                            user=team.uid["ann"], group=team.gid, extra_groups=[team.gid],
                            capture_output=True, text=True, timeout=60,
                            cwd=str(team.root / team.names["ann"]))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def submit_many(team, count: int, command: str, prefix: str) -> list[str]:
    """``count`` jobs of ann's, through one ``submit_job --from-file``."""
    lines = "".join(f"{command} {prefix}{i}\n" for i in range(count))
    result = team.run("ann", "submit_job", "--from-file", "-", input=lines, timeout=120)
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert len(names) == count
    return names


def in_jar(home: Path, state: str) -> list[str]:
    found = []
    for top, dirs, files in os.walk(home / state):
        found += files + [d for d in dirs if (Path(top) / d).is_symlink()]
    return found


def test_pilots_in_slurm_drain_the_jar_exactly_once_and_strand_nothing(team, slurm):
    marks = team.root / "marks"
    marks.mkdir()
    os.chown(marks, team.uid["ann"], team.gid)
    marks.chmod(0o2770)
    # a job appends its word when it has run to the end: one line per completion
    done = marks / "done"
    names = submit_many(team, 300, f"echo >>{done}", "quick")
    first = sbatch(team, slurm, "--array=1-2", "--time=10")
    wait_for(lambda: not slurm.jobs(), 240, interval=0.5,
             message="the pilots to drain the jar and end by themselves")
    words = done.read_text().split() if done.exists() else []
    assert sorted(words) == sorted(f"quick{i}" for i in range(300)), "each job exactly once"
    assert sorted(os.listdir(team.home / "completed")) == sorted(names)
    assert not in_jar(team.home, "unclaimed") and not in_jar(team.home, "claimed")
    assert first

    # An allocation that ends while its pilots run jobs: Slurm's SIGTERM, then
    # SIGKILL after KillWait.  The jobs stay for recover_jobs, never lost.
    slow = submit_many(team, 6, f"sleep 20; echo >>{done}", "slow")
    second = sbatch(team, slurm, "--array=1-2", "--time=10")
    wait_for(lambda: len(in_jar(team.home, "claimed")) >= 2, 120,
             message="both pilots to be running a slow job")
    subprocess.run(["scancel", second], env=slurm.env(), check=True)
    wait_for(lambda: not slurm.jobs(), 120, interval=0.5, message="the allocation to end")
    recovered = team.run("ann", "recover_jobs", timeout=120)
    assert recovered.returncode == 0, recovered.stderr
    sbatch(team, slurm, "--array=1-2", "--time=10")
    wait_for(lambda: not slurm.jobs(), 240, interval=0.5, message="the second pilots to end")
    words = done.read_text().split()
    assert sorted(w for w in words if w.startswith("slow")) == sorted(
        f"slow{i}" for i in range(6)), "each slow job ran to its end exactly once"
    assert set(slow) <= set(os.listdir(team.home / "completed"))
    assert not in_jar(team.home, "unclaimed") and not in_jar(team.home, "claimed")


def test_a_pilot_signalled_with_its_job_requeues_the_job(jar):
    """Without Slurm: SIGTERM to a foreground worker and to its job's processes at once
    (what a scheduler does at the end of an allocation) requeues the job, never fails it."""
    import signal
    import sys

    import psutil

    from conftest import BIN, pid_alive

    mark = jar.root / "ran-once"
    name = jar.submit(f"test -e {mark} && exit 0; touch {mark}; sleep 60")
    pilot = subprocess.Popen([sys.executable, str(BIN / "start_worker"), "--foreground"],
                             env=jar.env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(mark.exists, 60, message="the job to start")
        everyone = [pilot.pid] + [p.pid for p in psutil.Process(pilot.pid).children(True)]
        for pid in everyone:
            os.kill(pid, signal.SIGTERM)
        assert pilot.wait(60) == 0
    finally:
        if pid_alive(pilot.pid):
            pilot.kill()
    record = jar.record(name)
    assert record["status"] == "retrying", record
    assert record["attempts"][-1]["status"] == "interrupted" and record["recoveries"] == 1
    assert "told to stop" in record["reason"]
    assert (jar.path("unclaimed") / name).exists()
    jar.start_worker()
    jar.wait_completed(1)
    assert jar.record(name)["status"] == "succeeded"
