#!/bin/bash
# h2load against rapport servers: an independent load client for BENCHMARKS.md.
#
# Two servers, the old (OLD) and the new (NEW) binary, each `serve --workers 1` on
# a copy of the demo store it generated itself (STORE-old, STORE-new), driven by
# h2load (nghttp2) with gRPC-framed bodies built from the proto (bodies.py). For ROUNDS rounds, every target in
# TARGETS runs against both servers in turn (the order flips each round), then the
# single-stream runs (1 connection x 1 stream) of SINGLE_TARGETS. With OLD unset,
# only NEW is measured.
#
# h2load cannot read trailers, so it counts a gRPC error as a 200: every body is
# sent through grpcio and its answer checked (grpc-status 0, the id asked, a
# probability in [0, 1], ...) before and after each run, and h2load's DATA bytes
# show whether every response carried the verified message (report.py). Each
# measured run follows its own WARMUP-second h2load run of the same shape, not
# --warm-up-time, for the reason report.py gives.
#
# Raw output goes to OUT/raw; the markdown table to stdout and OUT/table.md. The
# first start of `serve` on an empty store generates and trains the demo book
# (1-2 minutes); later runs reuse it. Needs ports PORT_OLD, PORT_NEW, a quiet
# machine, and about (2 x targets) x (WARMUP + DURATION) s per round.
#
#   OLD=/tmp/rapport-old NEW=/tmp/rapport-head bash benches/h2load/run.sh
#   NEW=target/release/rapport DURATION=2 ROUNDS=1 bash benches/h2load/run.sh   # a quick check
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PROTO_ROOT=$HERE/../../proto
OLD=${OLD:-}; NEW=${NEW:-/tmp/rapport-head}
OUT=${OUT:-bench-results/h2load}; STORE=${STORE:-/tmp/h2load-store}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}; ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-2}; STREAMS=${STREAMS:-32}; WORKERS=${WORKERS:-1}
PORT_OLD=${PORT_OLD:-50571}; PORT_NEW=${PORT_NEW:-50572}
ID=${ID:-c-000000}            # relationship id of every unary body
BATCH_IDS=${BATCH_IDS:-}      # comma-separated ScoreBatch ids; default: the book's first BATCH_SIZE
BATCH_SIZE=${BATCH_SIZE:-100}
TARGETS=${TARGETS:-echo,score,segment,recommend,score-batch}  # also: query, summarize (Book)
QUERY_SEGMENT=${QUERY_SEGMENT:-Loyal}  # the query body's two filters
QUERY_STAGE=${QUERY_STAGE:-LIFECYCLE_STAGE_AT_RISK}
SINGLE_TARGETS=${SINGLE_TARGETS-echo,score,segment,recommend}  # empty: no single-stream runs
VENV=${VENV:-$OUT/venv}       # grpcio-tools goes here when the python has none
. "$HERE/../common.sh"

fail() { echo "run.sh: $*" >&2; exit 1; }
[ -x "$NEW" ] || fail "NEW=$NEW is not an executable rapport binary"
[ -z "$OLD" ] || [ -x "$OLD" ] || fail "OLD=$OLD is not an executable rapport binary"
if ! command -v h2load > /dev/null; then
  apt-get install -y nghttp2-client > /dev/null 2>&1 || { apt-get update > /dev/null && apt-get install -y nghttp2-client > /dev/null; }
fi
mkdir -p "$OUT/raw"; OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/raw/*
PY=python3
if ! $PY -c 'import grpc_tools, grpc' 2> /dev/null; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  PY=$VENV/bin/python
  $PY -c 'import grpc_tools, grpc' 2> /dev/null || $PY -m pip install -q grpcio-tools
fi
bodies() { $PY "$HERE/bodies.py" "$@"; }

# utime + stime of PID, in clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the parenthesised command name, which may hold spaces).
cpu_ticks() { local s; s=$(< /proc/$1/stat); s=${s##*) }; set -- $s; echo $((${12} + ${13})); }

SERVERS=()
stop_servers() {
  for pid in "${SERVERS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2> /dev/null || true; done
  SERVERS=()
}
trap stop_servers EXIT
serve() { # BINARY DATA_DIR PORT LOG -> PID
  RUST_LOG=warn "$1" --data-dir "$2" serve --listen 127.0.0.1:$3 --workers $WORKERS > "$4" 2>&1 &
  PID=$!; SERVERS+=($PID)
  wait_port $3 || fail "nothing listens on $3 (see $4)"
  bodies wait --target 127.0.0.1:$3 --seconds 600 > /dev/null || fail "no SERVING on $3 (see $4)"
  settle $PID
}
# Waits (at most 120 s) until PID has used under 5% of a core for a second:
# after SERVING a server may still build its score index in the background,
# and that work would be counted against the first runs.
settle() {
  local before after
  for i in $(seq 1 120); do
    before=$(cpu_ticks $1); sleep 1; after=$(cpu_ticks $1)
    [ $((after - before)) -lt $(( $(getconf CLK_TCK) / 20 )) ] && return 0
  done
  echo "run.sh: server $1 still busy after 120 s; measuring anyway" >&2
}

VERSIONS=(new); [ -n "$OLD" ] && VERSIONS=(old new)
declare -A BIN=([old]=$OLD [new]=$NEW) PORT=([old]=$PORT_OLD [new]=$PORT_NEW) SPID=()
# Each version generates and trains its own demo store: a build need not read
# the model format of another.
for v in "${VERSIONS[@]}"; do
  if [ ! -e "$STORE-$v/db" ]; then
    echo "generating and training the demo book in $STORE-$v with the $v binary (1-2 minutes)" >&2
    serve "${BIN[$v]}" "$STORE-$v" ${PORT[$v]} "$OUT/store-$v.log"; stop_servers
  fi
done
for v in "${VERSIONS[@]}"; do
  rm -rf "$OUT/data-$v"; cp -r "$STORE-$v" "$OUT/data-$v"
  serve "${BIN[$v]}" "$OUT/data-$v" ${PORT[$v]} "$OUT/serve-$v.log"; SPID[$v]=$PID
done
BATCH_ARGS=(--discover 127.0.0.1:$PORT_NEW --batch-size $BATCH_SIZE)
[ -n "$BATCH_IDS" ] && BATCH_ARGS=(--batch-ids "$BATCH_IDS")
bodies build --proto-root "$PROTO_ROOT" --out "$OUT/bodies" --id "$ID" "${BATCH_ARGS[@]}" \
  --query-segment "$QUERY_SEGMENT" --query-stage "$QUERY_STAGE" >&2

# Copies h2load's output through, reading the server's CPU the moment h2load
# says its main duration started and that it is over (its stdout is unbuffered).
sample_cpu() { # PID FILE
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case $line in
      "Main benchmark duration is started"*|"Main benchmark duration is over"*) cpu_ticks $1 >> "$2" ;;
    esac
  done
}
GRPC_HEADERS=(-H 'content-type: application/grpc' -H 'te: trailers')
FAILED=0
measure() { # VERSION ROUND MODE TARGET
  local v=$1 r=$2 mode=$3 t=$4 c=$CONNECTIONS m=$STREAMS path body per_call frame
  [ $mode = c1 ] && c=1 && m=1
  IFS=$'\t' read -r _ path body per_call < <(grep "^$t"$'\t' "$OUT/bodies/targets.tsv")
  local base=$OUT/raw/$v-$mode-$t-$r port=${PORT[$v]} pid=${SPID[$v]}
  bodies verify --target 127.0.0.1:$port --out "$OUT/bodies" --rpc $t > $base.verify-before \
    || fail "$t on the $v server before the run: not a real answer"
  frame=$(cut -f3 $base.verify-before)
  local url=http://127.0.0.1:$port$path
  if [ "$WARMUP" != 0 ]; then
    h2load -c $c -m $m -D $WARMUP "${GRPC_HEADERS[@]}" -d "$body" "$url" > $base.warmup.out 2>&1
  fi
  local cmd=(h2load -c $c -m $m -D $DURATION "${GRPC_HEADERS[@]}" -d "$body" --log-file=$base.log "$url")
  printf '%q ' "${cmd[@]}" > $base.cmd
  "${cmd[@]}" 2>&1 | sample_cpu $pid $base.cpu > $base.out
  bodies verify --target 127.0.0.1:$port --out "$OUT/bodies" --rpc $t > $base.verify-after \
    || fail "$t on the $v server after the run: not a real answer"
  $PY "$HERE/report.py" run $base $frame $per_call >&2 || FAILED=1
  gzip -f $base.log
}

START=$(date -u); LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 $ROUNDS); do
  ORDER=("${VERSIONS[@]}"); [ $((r % 2)) = 0 ] && [ -n "$OLD" ] && ORDER=(new old)
  for t in ${TARGETS//,/ }; do for v in "${ORDER[@]}"; do measure $v $r c64 $t; done; done
  for t in ${SINGLE_TARGETS//,/ }; do for v in "${ORDER[@]}"; do measure $v $r c1 $t; done; done
done
END=$(date -u); LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
stop_servers
rm -rf "$OUT/data-old" "$OUT/data-new"

label() { echo "$(basename "$1") ($("$1" --version))"; }
COMMAND="OLD=$OLD NEW=$NEW DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS STREAMS=$STREAMS ID=$ID bash benches/h2load/run.sh"
[ -z "$OLD" ] && COMMAND=${COMMAND#OLD= }
H2LOAD="h2load -c $CONNECTIONS -m $STREAMS -D $DURATION -H 'content-type: application/grpc' -H 'te: trailers' -d TARGET.bin --log-file=TARGET.log http://127.0.0.1:PORT/PATH"
SERVE="rapport --data-dir D serve --listen 127.0.0.1:PORT --workers $WORKERS"
export NPROC=$(nproc) WARMUP START END LOAD_BEFORE LOAD_AFTER COMMAND H2LOAD SERVE ID ROUNDS CONNECTIONS STREAMS TARGETS SINGLE_TARGETS
export LABEL_OLD=$([ -n "$OLD" ] && label "$OLD" || true) LABEL_NEW=$(label "$NEW") VERSION_LIST="${VERSIONS[*]}"
export BATCH=$(awk -F'\t' '$1 == "score-batch" { print $4 }' "$OUT/bodies/targets.tsv")
$PY - "$OUT/meta.json" << 'EOF'
import json, os, sys
e = os.environ
split = lambda s: [x for x in s.split(",") if x]
json.dump({
    "start": e["START"], "end": e["END"], "nproc": int(e["NPROC"]),
    "load_before": e["LOAD_BEFORE"], "load_after": e["LOAD_AFTER"],
    "command": e["COMMAND"], "h2load": e["H2LOAD"], "serve": e["SERVE"],
    "id": e["ID"], "warmup": float(e["WARMUP"]), "batch_size": int(e["BATCH"] or 0), "rounds": int(e["ROUNDS"]),
    "connections": int(e["CONNECTIONS"]), "streams": int(e["STREAMS"]),
    "targets": split(e["TARGETS"]), "single_targets": split(e["SINGLE_TARGETS"]),
    "versions": e["VERSION_LIST"].split(), "labels": {"old": e["LABEL_OLD"], "new": e["LABEL_NEW"]},
}, open(sys.argv[1], "w"), indent=1)
EOF
$PY "$HERE/report.py" table "$OUT" | tee "$OUT/table.md" || FAILED=1
[ $FAILED = 0 ] || fail "some runs did not get real answers: see 'Failed runs' above and $OUT/raw"
