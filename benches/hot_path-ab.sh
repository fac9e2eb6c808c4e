#!/bin/bash
# The criterion hot path (benches/hot_path.rs) of two revisions, alternating
# in one run: OLD_BENCH and NEW_BENCH are the bench executables each
# revision's `cargo bench --bench hot_path --no-run` prints. Every bench id
# both revisions have gets its median per round, side by side (criterion's
# point estimate of the mean is the middle of its `time: [lo est hi]`).
#
#   OLD_BENCH=/tmp/old/target/release/deps/hot_path-XXXX \
#   NEW_BENCH=target/release/deps/hot_path-YYYY bash benches/hot_path-ab.sh
set -eu
OLD_BENCH=${OLD_BENCH:?the old revision's hot_path executable}
NEW_BENCH=${NEW_BENCH:?the new revision's hot_path executable}
ROUNDS=${ROUNDS:-2}; OUT=${OUT:-bench-results/hot_path-ab}
ARGS=(--bench --noplot --warm-up-time 1 --measurement-time ${MEASURE:-3})
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
{ date -u; nproc; uptime; } > "$OUT/machine.txt"
declare -A BIN=([old]=$OLD_BENCH [new]=$NEW_BENCH)
for r in $(seq 1 $ROUNDS); do
  ORDER="old new"; [ $((r % 2)) = 0 ] && ORDER="new old"
  for v in $ORDER; do
    # Each revision's criterion keeps its own state, so one cannot read the
    # other's saved estimates as a baseline.
    (cd "$(mktemp -d)" && CRITERION_HOME=$PWD "${BIN[$v]}" "${ARGS[@]}") > "$OUT/$v-$r.txt" 2>&1
  done
done
{ date -u; uptime; } >> "$OUT/machine.txt"
python3 - "$OUT" "$ROUNDS" << 'PY'
import re, sys, pathlib
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
pat = re.compile(r"^(\S.*?)\s+time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", re.M)
scale = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
def read(v, r):
    text = (out / f"{v}-{r}.txt").read_text()
    # A long id makes criterion print the time on the next line.
    text = re.sub(r"\n\s+time:", " time:", text)
    return {m[1].strip(): float(m[4]) * scale[m[5]] for m in pat.finditer(text)}
runs = {v: [read(v, r) for r in range(1, rounds + 1)] for v in ("old", "new")}
ids = [i for i in runs["new"][0] if all(i in run for v in runs for run in runs[v])]
print("| bench | old µs | new µs | new / old |")
print("|---|---:|---:|---:|")
for i in ids:
    o = [run[i] for run in runs["old"]]; n = [run[i] for run in runs["new"]]
    fmt = lambda xs: " / ".join(f"{x:.3f}" for x in xs)
    print(f"| `{i}` | {fmt(o)} | {fmt(n)} | {sum(n) / sum(o):.2f} |")
only = sorted(set(runs["new"][0]) ^ set(runs["old"][0]))
if only:
    print("\nIn one revision only: " + ", ".join(f"`{i}`" for i in only))
PY
