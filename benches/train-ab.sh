#!/bin/bash
# `rapport train` on one store (STORE, e.g. the 1M demo book) with two binaries
# (OLD, NEW), alternating ROUNDS times: training seconds from the log, the
# features pass (from "training" to "churn learners fit"), wall time and peak
# RSS from /usr/bin/time -v. See BENCHMARKS.md, round 4.
set -u
OLD=${OLD:-/tmp/rapport-old}; NEW=${NEW:-/tmp/rapport-head}; STORE=${STORE:-/tmp/rapport-1m}; ROUNDS=${ROUNDS:-2}
for round in $(seq 1 $ROUNDS); do
  for B in $OLD $NEW; do
    /usr/bin/time -v $B --data-dir $STORE train > /tmp/train-ab.log 2>&1
    log=$(sed 's/\x1b\[[0-9;]*m//g' /tmp/train-ab.log)
    T=$(echo "$log" | grep "rapport::server: trained" | grep -oE "seconds=[0-9.]+")
    F=$(echo "$log" | grep -E "rapport::train: training |churn learners fit" | awk '{print $1}' | tr '\n' ' ')
    W=$(grep "Elapsed (wall" /tmp/train-ab.log | awk '{print $NF}')
    R=$(grep "Maximum resident" /tmp/train-ab.log | awk '{print $NF}')
    echo "$B round $round: training $T, wall $W, peak RSS $R kB, features pass $F"
  done
done
