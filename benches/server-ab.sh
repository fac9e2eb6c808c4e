#!/bin/bash
# Two servers, the old (OLD) and the new (NEW) binary, on fresh copies of one
# store (STORE), driven alternately by NEW's bench client ROUNDS times with the
# targets RPCS and any extra bench flags in BENCH_ARGS; prints each run's lines.
# See BENCHMARKS.md, round 5. Needs ports 50591-50592.
set -u
OLD=${OLD:-/tmp/rapport-old}; NEW=${NEW:-/tmp/rapport-head}; STORE=${STORE:-/tmp/new-20k}
RPCS=${RPCS:-score-stream}; ROUNDS=${ROUNDS:-2}; BENCH_ARGS=${BENCH_ARGS:-}
. "$(dirname "$0")/common.sh"
rm -rf /tmp/server-ab-old /tmp/server-ab-new
cp -r $STORE /tmp/server-ab-old; cp -r $STORE /tmp/server-ab-new
RUST_LOG=warn $OLD --data-dir /tmp/server-ab-old serve --listen 127.0.0.1:50591 > /tmp/server-ab-old.log 2>&1 & P_OLD=$!
RUST_LOG=warn $NEW --data-dir /tmp/server-ab-new serve --listen 127.0.0.1:50592 > /tmp/server-ab-new.log 2>&1 & P_NEW=$!
wait_port 50591; wait_port 50592; sleep 2
for round in $(seq 1 $ROUNDS); do
  for v in old new; do
    PORT=50591; PID=$P_OLD; [ $v = new ] && PORT=50592 && PID=$P_NEW
    echo "== $v server, round $round"
    $NEW bench --target 127.0.0.1:$PORT --server-pid $PID --rpcs $RPCS --duration 3 --warmup 1 --repetitions 3 $BENCH_ARGS 2>&1 \
      | grep -E "^(echo|score|segment|recommend|record)"
  done
done
kill $P_OLD $P_NEW; wait $P_OLD $P_NEW 2>/dev/null
