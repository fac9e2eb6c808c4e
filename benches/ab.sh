#!/bin/bash
# A/B of two rapport binaries (OLD, NEW), alternating, both driven by the NEW
# binary's bench client; see BENCHMARKS.md "What each fix bought". Needs ~10 minutes
# of a quiet machine and ports 50561-50563.
set -u
OLD=${OLD:-/tmp/rapport-old}; NEW=${NEW:-/tmp/rapport-head}; OUT=${OUT:-bench-results/ab}
mkdir -p $OUT
date -u > $OUT/date.txt; uptime >> $OUT/date.txt
for v in old new; do
  B=$OLD; [ $v = new ] && B=$NEW
  rm -rf /tmp/$v-20k
  $B bench --spawn --keep-data /tmp/$v-20k --rpcs score --duration 1 --warmup 0 --repetitions 1 > $OUT/spawn-$v.txt 2>&1
done
. "$(dirname "$0")/common.sh"
RUST_LOG=warn $OLD --data-dir /tmp/old-20k serve --listen 127.0.0.1:50561 > $OUT/serve-old.log 2>&1 & POLD=$!
RUST_LOG=warn $NEW --data-dir /tmp/new-20k serve --listen 127.0.0.1:50562 > $OUT/serve-new.log 2>&1 & PNEW=$!
wait_port 50561; wait_port 50562; sleep 2
for round in 1 2; do
  for v in old new; do
    PORT=50561; PID=$POLD; [ $v = new ] && PORT=50562 && PID=$PNEW
    $NEW bench --target 127.0.0.1:$PORT --server-pid $PID --duration 3 --warmup 1 --repetitions 3 --json $OUT/c64-$v-$round.json > $OUT/c64-$v-$round.txt 2>&1
  done
done
for v in old new; do
  PORT=50561; PID=$POLD; [ $v = new ] && PORT=50562 && PID=$PNEW
  $NEW bench --target 127.0.0.1:$PORT --server-pid $PID --rpcs score,segment,recommend --concurrency 1 --channels 1 --duration 3 --warmup 1 --repetitions 3 --json $OUT/c1-$v.json > $OUT/c1-$v.txt 2>&1
done
kill $POLD $PNEW; wait $POLD $PNEW 2>/dev/null
# Durable ingestion on fresh copies, with ids in book (id) order, then in a
# seeded random order (writes that do not walk neighbouring keys).
ingest() { # NAME EXTRA-ARGS...
  local name=$1; shift
  for round in 1 2; do
    for v in old new; do
      B=$OLD; [ $v = new ] && B=$NEW
      rm -rf /tmp/$v-ing && cp -r /tmp/$v-20k /tmp/$v-ing
      RUST_LOG=warn $B --data-dir /tmp/$v-ing serve --listen 127.0.0.1:50563 > $OUT/serve-ing-$v.log 2>&1 & P=$!
      wait_port 50563; sleep 1
      $NEW bench --target 127.0.0.1:50563 --server-pid $P --rpcs record-events --batch-concurrency 8 "$@" --duration 5 --warmup 1 --repetitions 1 --json $OUT/$name-$v-$round.json > $OUT/$name-$v-$round.txt 2>&1
      kill $P; wait $P 2>/dev/null
    done
  done
}
ingest ingest
ingest ingest-shuffled --shuffle-ids
date -u >> $OUT/date.txt; uptime >> $OUT/date.txt
echo done >> $OUT/date.txt
