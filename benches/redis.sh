#!/bin/bash
# Score and ingest with the sled store, and with one and two Rapport replicas
# on a Redis Cluster store (a fresh local cluster, three primaries with a
# replica each, see .ci/redis-cluster.sh), all on the default 20k demo book.
# See BENCHMARKS.md, "Redis Cluster store". Needs ports 50571-50573 and
# 7300-7305 (+10000).
#
#   R=target/release/rapport OUT=/tmp/redis-bench bash benches/redis.sh
set -u
R=${R:-target/release/rapport}; OUT=${OUT:-/tmp/redis-bench}
DURATION=${DURATION:-3}; REPS=${REPS:-3}; WORKERS=${WORKERS:-2}
BENCH="--duration $DURATION --warmup 1 --repetitions $REPS --ids-from-demo 20000"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
mkdir -p "$OUT"; rm -rf "$OUT"/sled
export REDIS_CLUSTER_PORT=7300 REDIS_CLUSTER_DIR=$OUT/cluster
STORE=$("$HERE/../.ci/redis-cluster.sh" start)/bench
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null; wait "${PIDS[@]}" 2>/dev/null; "$HERE/../.ci/redis-cluster.sh" stop; }
trap cleanup EXIT

# Waits for a server's log to say it serves a model (start-up training done).
ready() {
  for _ in $(seq 1 1800); do grep -qE "model loaded|ready: model active|another process made active" "$1" && return 0; sleep 0.2; done
  echo "no model in $1" >&2; return 1
}
serve() { # name port args...
  local name=$1 port=$2; shift 2
  RUST_LOG=info $R "$@" serve --listen 127.0.0.1:$port --workers $WORKERS > "$OUT/$name.log" 2>&1 &
  PIDS+=($!); wait_port $port; ready "$OUT/$name.log"
}
bench() { # label port pid rpcs
  echo "== $1 ($4)"
  $R bench --target 127.0.0.1:$2 --server-pid $3 --rpcs $4 $BENCH --json "$OUT/$1-$4.json" 2>&1 \
    | grep -E "^(echo|score|record)"
}

serve sled 50571 --data-dir "$OUT/sled"
bench sled 50571 ${PIDS[0]} score
bench sled 50571 ${PIDS[0]} record-events

start=$SECONDS
serve redis-a 50572 --store "$STORE"
echo "redis replica a has a model $((SECONDS - start)) s after its start (demo load into the cluster + training)"
serve redis-b 50573 --store "$STORE"
bench redis-one 50572 ${PIDS[1]} score
bench redis-one 50572 ${PIDS[1]} record-events

# Two replicas, one client each, at once.
for rpcs in score record-events; do
  bench redis-two-a 50572 ${PIDS[1]} $rpcs > "$OUT/two-a-$rpcs.txt" &
  A=$!
  bench redis-two-b 50573 ${PIDS[2]} $rpcs > "$OUT/two-b-$rpcs.txt" &
  B=$!
  wait $A $B
  cat "$OUT/two-a-$rpcs.txt" "$OUT/two-b-$rpcs.txt"
done
