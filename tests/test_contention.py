"""Contention: eight workers drain jobs that keep arriving while they run.

Half the jobs are submitted by hand, the way the guide shows (``cp`` into
``limbo/``, then ``mv`` into the jar, by real ``cp`` and ``mv`` processes in
a shell loop), half through ``jobjar.submit_job`` (plus a few through the
``submit_job`` command).  Every job appends its own name to one log opened
with ``O_APPEND`` (``echo "$JJ_JOB_NAME" >> log``), so a job run twice shows
up twice and a lost one not at all.

Size: ``JJ_TEST_SCALE`` multiplies the job count.  The CI default (1) is
the full 20,000 jobs, about 70 s on two cores; ``JJ_TEST_SCALE=0.2`` gives a
quick 4,000-job run that still keeps eight workers fighting over every claim.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from conftest import ROOT, wait_for

SCALE = float(os.environ.get("JJ_TEST_SCALE", "1") or 1)
JOBS = max(40, int(20000 * SCALE))
WORKERS = 8
CATEGORY = "busy"

LOG_JOB = '#!/bin/sh\necho "$JJ_JOB_NAME" >> "{log}"\n'

#: Submits jobs through the Python API, a quarter of them into a category.
API_SUBMITTER = """
import sys
import jobjar
count = int(sys.argv[1])
command = 'echo "$JJ_JOB_NAME" >> ' + sys.argv[2]
for i in range(count):
    name = jobjar.submit_job(command, priority=i % 7 - 3, id="api",
                             category="{cat}" if i % 4 == 0 else None)
    print(name, flush=True)
""".replace("{cat}", CATEGORY)

#: Submits jobs by hand with cp and mv; half of the priorities are absent.
HAND_SUBMITTER = """
set -e
template=$1; count=$2; jar=$3
i=0
while [ $i -lt $count ]; do
    case $((i % 3)) in
        0) name="hand job $i.$((i % 5))";;
        1) name="hand-$i";;
        *) name="hand-$i.-$((i % 4))";;
    esac
    cp "$template" "$jar/limbo/$name"
    mv "$jar/limbo/$name" "$jar/unclaimed/"
    echo "$name"
    i=$((i + 1))
done
"""


def held_jobs(jar) -> list[str]:
    """Files under any worker's ``job/`` tree."""
    return [os.path.join(d, f) for w in os.listdir(jar.workers_dir)
            if os.path.isdir(jar.workers_dir / w / "job")
            for d, _s, files in os.walk(jar.workers_dir / w / "job") for f in files]


def test_eight_workers_drain_jobs_submitted_while_they_run(jar):
    log = jar.root / "runs.log"
    template = jar.root / "template"
    template.write_text(LOG_JOB.format(log=log))
    template.chmod(0o755)
    jar.run("check_workers", "--dry-run", check=True)  # creates the jar
    for index in range(WORKERS):
        jar.start_worker(*([CATEGORY] if index % 2 else []))

    hand_count = JOBS // 2
    cli_count = 10
    api_count = JOBS - hand_count - cli_count
    hand = subprocess.Popen(["sh", "-c", HAND_SUBMITTER, "sh", str(template), str(hand_count),
                             str(jar.home)], stdout=subprocess.PIPE, text=True, env=jar.env)
    api = subprocess.Popen([sys.executable, "-c", API_SUBMITTER, str(api_count), str(log)],
                           stdout=subprocess.PIPE, text=True,
                           env={**jar.env, "PYTHONPATH": str(ROOT)})
    cli_names = [jar.submit("-c", CATEGORY, f'echo "$JJ_JOB_NAME" >> {log}')
                 for _ in range(cli_count)]
    # the workers are draining the jar while the submitters still fill it
    wait_for(jar.completed, timeout=120, message="a first completed job")
    assert hand.poll() is None or api.poll() is None, "submission ended before any job ran"
    hand_out, _ = hand.communicate(timeout=600)
    api_out, _ = api.communicate(timeout=600)
    assert hand.returncode == 0 and api.returncode == 0
    names = hand_out.splitlines() + api_out.splitlines() + cli_names
    assert len(names) == JOBS and len(set(names)) == JOBS

    wait_for(lambda: len(jar.completed()) >= JOBS, timeout=300 * max(1.0, SCALE),
             interval=0.5, message=f"{JOBS} jobs completed")
    (jar.workers_dir / "STOP_ALL").touch()
    for pid in list(jar.worker_pids):
        wait_for(lambda p=pid: not os.path.exists(f"/proc/{p}/status") or
                 "zombie" in open(f"/proc/{p}/status").read(), message="workers stop")

    runs = Counter(log.read_text().splitlines())
    assert set(runs) == set(names), "lost or unknown jobs in the log"
    twice = {name: n for name, n in runs.items() if n != 1}
    assert not twice, f"jobs run more than once: {list(twice.items())[:5]}"
    assert sorted(jar.completed()) == sorted(names)
    assert os.listdir(jar.path("claimed")) == []
    assert held_jobs(jar) == []
    assert os.listdir(jar.path("limbo")) == []
    assert not os.listdir(jar.path("unclaimed", CATEGORY))
    assert [n for n in os.listdir(jar.path("unclaimed")) if n != CATEGORY] == []
    sample = names[:: max(1, JOBS // 200)]
    assert all(jar.record(n)["status"] == "succeeded" for n in sample)
    status = jar.run("system_status", check=True).stdout
    from jobjar.status import COUNT_LIMIT  # a bigger history is counted up to this (capped)

    assert (str(JOBS) if JOBS <= COUNT_LIMIT else f"{COUNT_LIMIT}+") in status
