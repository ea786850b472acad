#!/bin/sh
# The user guide's SR computation as one seed job, with no monitor job:
# PARTS run_sr jobs over FIRST..LAST, then merge_sr once all of them succeeded.
#
#   submit_job "multistage.sh /data/sr_input 1 100 10"     (as a seed job)
#   sh multistage.sh /data/sr_input 1 100 10                (or straight from a shell)
#
# It prints the name of the merge job, so a third stage can follow it:
#   merge=$(sh multistage.sh /data/sr_input 1 100 10)
#   submit_job --after "$merge" plot_sr /data/sr_input
set -e
input=$1 first=$2 last=$3 parts=$4
size=$(( (last - first + parts) / parts ))
names=
start=$first
while [ "$start" -le "$last" ]; do
    end=$(( start + size - 1 ))
    if [ "$end" -gt "$last" ]; then end=$last; fi
    names="$names,$(submit_job run_sr "$input" "$start" "$end")"
    start=$(( end + 1 ))
done
submit_job --after "${names#,}" merge_sr "$input"
