#!/usr/bin/env bash
# The Job Jar demo: install, create a jar, start workers, run a small batch
# (priorities, a category, a seed job that submits more jobs), wait for it,
# show the status, stop the workers.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing Job Jar into .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check .
export PATH="$PWD/.venv/bin:$PATH"

export JJ_HOME="${JJ_HOME:-$(mktemp -d)/jar}"
export JJ_PAUSE_TIME=5
# Workers refuse to run jobs as root unless told; this demo may run in a container as root.
if [ "$(id -u)" = 0 ]; then export JJ_ALLOW_ROOT=yes; fi
echo "== jar: $JJ_HOME"

echo "== starting two workers (one also takes LINUX jobs)"
start_worker LINUX
start_worker
trap 'stop_worker all >/dev/null 2>&1 || true' EXIT

echo "== submitting"
pause_all() { python -c 'import jobjar; jobjar.pause_all()'; }
unpause_all() { python -c 'import jobjar; jobjar.unpause_all()'; }
pause_all   # load the jar first, so the priorities decide the order
for i in 1 2 3; do submit_job -p -5 -i background$i "sleep 0.3; echo background job $i"; done
submit_job -p 10 -i urgent "echo urgent job: runs first"
submit_job -c LINUX -i kernel 'echo "kernel on $JJ_NODE: $(uname -sr)"'
seed=$(mktemp)
cat > "$seed" <<'SEED'
#!/bin/sh
# A seed job: split the sum of 1..40 into four parts, then merge them once
# every part has succeeded (no monitor job needed).
parts=""
for first in 1 11 21 31; do
  name=$(submit_job -i part$first "seq $first $((first + 9)) | awk '{s+=\$1} END {print s}'")
  parts="$parts,$name"
done
submit_job -i merge --after "${parts#,}" 'cat "$JJ_HOME"/output/*-part*.out | awk '"'"'{s+=$1} END {print s}'"'"
SEED
chmod +x "$seed"
seed_job=$(submit_job -p 5 -i seed -f "$seed")
rm -f "$seed"   # the jar has its own copy
unpause_all

echo "== waiting"
wait_jobs --no-progress "$seed_job"
merge_job=$(cat "$JJ_HOME/output/$seed_job.out")   # the seed printed the merge job's name
wait_jobs --no-progress "$merge_job"
wait_jobs --no-progress || true                   # and everything else still in the jar

echo "== status"
system_status
echo "== sum of 1..40 computed by the seed job's parts and merge: $(cat "$JJ_HOME/output/$merge_job.out")"
echo "== stopping the workers"
stop_worker all
echo "== the jar stays in $JJ_HOME for you to look at (rm -r it when done)"
