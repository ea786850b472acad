#!/usr/bin/env python3
"""Throughput of two checkouts, interleaved: what a change costs or saves.

Usage::

    git worktree add /tmp/before <commit>
    python3 bench/compare.py /tmp/before . [--runs 5] [--jobs 2000]

Each run imports ``bench/run.py`` from one checkout in a fresh child
process (run from that checkout, so its ``jobjar`` is the one imported) and
measures its ``tp_jobjar``: N ``touch`` jobs through two workers, submitted
with ``jobjar.submit_job``.  The two checkouts alternate, so that a machine
whose speed drifts during the sitting (a shared VM's disk) affects both
alike; the medians and their ratio are printed.  Nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

#: Runs in the child: one ``tp_jobjar`` of the checkout given as argv[1].
CHILD = r"""
import shutil, sys, tempfile
from pathlib import Path
top, jobs = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [top, top + "/bench"]
import run
root = Path(tempfile.mkdtemp(prefix="jobjar-compare-"))
run.ROOT.append(root)
try:
    print(jobs / run.tp_jobjar(root, "x", jobs, 2, []))
finally:
    shutil.rmtree(root, ignore_errors=True)
"""


def rate(top: Path, jobs: int) -> float:
    """Jobs per second of one run of the checkout at ``top``."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(top), str(jobs)], cwd=top,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"compare: {top}: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2000)
    args = p.parse_args()
    rates: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.runs):
        for label in rates:
            rates[label].append(rate(getattr(args, label).resolve(), args.jobs))
            print(f"{label}: {rates[label][-1]:,.0f} jobs/s", flush=True)
    for label, values in rates.items():
        print(f"{label}: median {statistics.median(values):,.0f} jobs/s "
              f"({min(values):,.0f}-{max(values):,.0f})")
    ratio = statistics.median(rates["after"]) / statistics.median(rates["before"])
    print(f"after/before: {ratio:.2f} x")


if __name__ == "__main__":
    main()
