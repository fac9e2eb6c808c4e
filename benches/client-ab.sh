#!/bin/bash
# One server (SERVER, on a fresh copy of the 20k store STORE), driven in turn by
# the bench clients of two binaries (OLD, NEW), ROUNDS times; prints each run's
# lines for the targets in RPCS. See BENCHMARKS.md, round 4.
set -u
SERVER=${SERVER:-/tmp/rapport-head}; OLD=${OLD:-/tmp/rapport-old}; NEW=${NEW:-/tmp/rapport-head}
STORE=${STORE:-/tmp/new-20k}; RPCS=${RPCS:-score-stream}; ROUNDS=${ROUNDS:-4}
. "$(dirname "$0")/common.sh"
rm -rf /tmp/client-ab && cp -r $STORE /tmp/client-ab
RUST_LOG=warn $SERVER --data-dir /tmp/client-ab serve --listen 127.0.0.1:50567 > /tmp/client-ab.log 2>&1 & P=$!
wait_port 50567; sleep 1
for round in $(seq 1 $ROUNDS); do
  for C in $OLD $NEW; do
    echo "== client $C, round $round"
    $C bench --target 127.0.0.1:50567 --server-pid $P --rpcs $RPCS --duration 3 --warmup 1 --repetitions 3 2>&1 | grep -E "^(echo|score|segment|recommend|record)"
  done
done
kill $P; wait $P 2>/dev/null
