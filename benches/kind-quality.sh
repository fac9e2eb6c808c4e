#!/bin/bash
# Held-out metrics of each kind's model (suppliers' supply risk, accounts'
# credit risk, partners' lapse risk and sourced value) on the demo book at
# several seeds, for BENCHMARKS.md. Each seed's first start generates and
# trains the demo book; `train` then trains it again and prints every metric,
# and writes the HTML report (whose metric table groups them by kind).
#
#   B=target/release/rapport SEEDS="42 7" OUT=/tmp/kq bash benches/kind-quality.sh
set -u
B=${B:-target/release/rapport}; OUT=${OUT:-/tmp/kq}; SEEDS=${SEEDS:-42 7 2026}
mkdir -p "$OUT"
for seed in $SEEDS; do
  d=$OUT/store-$seed; rm -rf "$d"
  "$B" --data-dir "$d" serve --listen 127.0.0.1:0 --demo-seed "$seed" > "$OUT/serve-$seed.log" 2>&1 &
  pid=$!
  until grep -q "ready: model active" "$OUT/serve-$seed.log"; do
    kill -0 $pid 2> /dev/null || { echo "serve exited: $OUT/serve-$seed.log" >&2; exit 1; }
    sleep 1
  done
  kill $pid; wait $pid
  "$B" --data-dir "$d" train --report "$OUT/demo-$seed.html" > "$OUT/train-$seed.txt" 2>&1
  echo "== seed $seed"
  grep -E "^\s*(supplier|account|partner)\." "$OUT/train-$seed.txt"
done
