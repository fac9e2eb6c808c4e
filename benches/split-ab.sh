#!/bin/bash
# Round 5 (BENCHMARKS.md). Servers on fresh copies of one 20k store (STORE):
#  1. the old (OLD) and the new (NEW) binary, driven alternately by NEW's bench
#     client with its defaults, ROUNDS times, every default target;
#  2. ScoreStream with 16 and 32 messages in flight per stream, alternately;
#  3. NEW's server with one worker (the two cores split between server and
#     client) against the default, alternately, for the unary latency tail;
#  4. NEW's client on one thread (its default) and on two, alternately.
# Needs a quiet machine, ~15 minutes, and ports 50581-50583.
set -u
OLD=${OLD:-/tmp/rapport-old}; NEW=${NEW:-/tmp/rapport-head}; STORE=${STORE:-/tmp/new-20k}
ROUNDS=${ROUNDS:-2}; OUT=${OUT:-bench-results/split-ab}
mkdir -p $OUT; date -u > $OUT/date.txt; uptime >> $OUT/date.txt
. "$(dirname "$0")/common.sh"
start() { # NAME BINARY PORT ARGS... ; sets PID
  local name=$1 bin=$2 port=$3; shift 3
  rm -rf /tmp/split-ab-$name && cp -r $STORE /tmp/split-ab-$name
  RUST_LOG=warn $bin --data-dir /tmp/split-ab-$name serve --listen 127.0.0.1:$port "$@" > $OUT/serve-$name.log 2>&1 &
  PID=$!; wait_port $port
}
bench() { # FILE CLIENT PORT PID ARGS...
  local file=$1 client=$2 port=$3 pid=$4; shift 4
  $client bench --target 127.0.0.1:$port --server-pid $pid --duration 3 --warmup 1 --repetitions 3 "$@" > $OUT/$file.txt 2>&1
  grep -E "^(echo|score|segment|recommend)" $OUT/$file.txt | sed "s/^/$file: /" | cut -c1-160
}
start old $OLD 50581; P_OLD=$PID
start new $NEW 50582; P_NEW=$PID
start one $NEW 50583 --workers 1; P_ONE=$PID
sleep 2
for r in $(seq 1 $ROUNDS); do
  bench old-server-$r $NEW 50581 $P_OLD
  bench new-server-$r $NEW 50582 $P_NEW
done
for r in $(seq 1 $ROUNDS); do
  bench window-16-$r $NEW 50582 $P_NEW --rpcs score-stream --stream-window 16
  bench window-32-$r $NEW 50582 $P_NEW --rpcs score-stream --stream-window 32
done
for r in $(seq 1 $ROUNDS); do
  bench all-workers-$r $NEW 50582 $P_NEW --rpcs score,segment,recommend
  bench one-worker-$r $NEW 50583 $P_ONE --rpcs score,segment,recommend
done
bench one-worker-c1 $NEW 50583 $P_ONE --rpcs score,segment,recommend --concurrency 1 --channels 1
for r in $(seq 1 $ROUNDS); do
  bench client-2-threads-$r $NEW 50582 $P_NEW --rpcs score,score-stream --client-threads 2
  bench client-1-thread-$r $NEW 50582 $P_NEW --rpcs score,score-stream
done
kill $P_OLD $P_NEW $P_ONE; wait $P_OLD $P_NEW $P_ONE 2>/dev/null
