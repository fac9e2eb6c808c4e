#!/bin/bash
# What h2load cannot measure, old build against new, alternating in one run:
#  1. first start: the demo book generated, loaded and trained (seconds to
#     SERVING and peak RSS), each binary on its own empty store, since a store
#     written by one build's model format need not load in another;
#  2. ScoreStream (h2load cannot keep a stream open) and ScoreBatch in
#     relationships/s, ROUNDS times, both servers driven by NEW's bench client;
#  3. durable ingestion: RecordEvents of 1,000 events, 8 calls in flight, each
#     acknowledged after its flush, on fresh copies of each store.
# Unary Score/Segment/Recommend against Echo come from benches/h2load/run.sh.
# Needs a quiet machine, ~10 minutes and ports 50561-50563.
#
#   OLD=/tmp/rapport-old NEW=target/release/rapport bash benches/ab.sh
set -u
OLD=${OLD:-/tmp/rapport-old}; NEW=${NEW:-target/release/rapport}
OUT=${OUT:-bench-results/ab}; ROUNDS=${ROUNDS:-2}; SCRATCH=${SCRATCH:-/tmp/rapport-ab}
. "$(dirname "$0")/common.sh"
mkdir -p "$OUT" "$SCRATCH"
{ date -u; nproc; uptime; } > "$OUT/machine.txt"
declare -A BIN=([old]=$OLD [new]=$NEW) PORT=([old]=50561 [new]=50562) PID=()
lines() { grep -E "^(echo|score|segment|recommend|record|start)" "$1" | sed "s|^|$(basename "$1" .txt): |"; }

for v in old new; do
  rm -rf "$SCRATCH/$v"
  /usr/bin/time -v "${BIN[$v]}" bench --spawn --keep-data "$SCRATCH/$v" --rpcs score \
    --duration 1 --warmup 0 --repetitions 1 > "$OUT/start-$v.txt" 2>&1
  grep -E "SERVING|Maximum resident" "$OUT/start-$v.txt" | sed "s|^|start-$v: |"
done

for v in old new; do
  RUST_LOG=warn "${BIN[$v]}" --data-dir "$SCRATCH/$v" serve --listen 127.0.0.1:${PORT[$v]} > "$OUT/serve-$v.log" 2>&1 &
  PID[$v]=$!
done
wait_port ${PORT[old]}; wait_port ${PORT[new]}; sleep 2
for r in $(seq 1 $ROUNDS); do
  ORDER="old new"; [ $((r % 2)) = 0 ] && ORDER="new old"
  for v in $ORDER; do
    "$NEW" bench --target 127.0.0.1:${PORT[$v]} --server-pid ${PID[$v]} --rpcs score-batch,score-stream \
      --duration 3 --warmup 1 --repetitions 3 --json "$OUT/stream-$v-$r.json" > "$OUT/stream-$v-$r.txt" 2>&1
    lines "$OUT/stream-$v-$r.txt"
  done
done
kill ${PID[old]} ${PID[new]}; wait ${PID[old]} ${PID[new]} 2> /dev/null

for r in $(seq 1 $ROUNDS); do
  for v in old new; do
    rm -rf "$SCRATCH/$v-ingest" && cp -r "$SCRATCH/$v" "$SCRATCH/$v-ingest"
    RUST_LOG=warn "${BIN[$v]}" --data-dir "$SCRATCH/$v-ingest" serve --listen 127.0.0.1:50563 > "$OUT/serve-ingest-$v.log" 2>&1 &
    P=$!; wait_port 50563; sleep 1
    "$NEW" bench --target 127.0.0.1:50563 --server-pid $P --rpcs record-events --batch-concurrency 8 \
      --duration 5 --warmup 1 --repetitions 1 --json "$OUT/ingest-$v-$r.json" > "$OUT/ingest-$v-$r.txt" 2>&1
    lines "$OUT/ingest-$v-$r.txt"
    kill $P; wait $P 2> /dev/null
  done
done
{ date -u; uptime; } >> "$OUT/machine.txt"
