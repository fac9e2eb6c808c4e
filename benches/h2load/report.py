#!/usr/bin/env python3
"""Figures of the h2load runs run.sh made, and the markdown table for BENCHMARKS.md.

  report.py run   BASE BODY_FRAME_BYTES RELATIONSHIPS_PER_CALL  -> BASE.json
  report.py table OUT                                           -> markdown on stdout

A run is BASE.out (h2load's stdout), BASE.log (h2load --log-file: start µs, HTTP
status, µs to the end of the response, one row per request) and BASE.cpu (two
lines of the server's utime+stime in clock ticks, read when h2load printed that
its main duration started and that it was over). run.sh warms up with a separate
h2load run just before, not with --warm-up-time: with it, h2load 1.52 adds the
warm-up's DATA and header bytes to its "data" and "headers" figures while its
request counts leave the warm-up out, and the check below needs both to agree.

- req/s is h2load's own figure (requests done / duration).
- p50 / p99 are nearest-rank percentiles over every row of the log: the value at
  rank ceil(q * n) of the n sorted durations.
- server CPU per call is (ticks after - ticks before) / CLK_TCK / rows of the log.
- "answered" checks what h2load cannot: it counts a gRPC error as a success, a
  200 whose grpc-status travels in trailers it never reads. A real answer carries
  the response message run.sh verified just before (the same id gets the same
  bytes), an error none (trailers only). So h2load's DATA bytes over n times the
  verified frame is the fraction of full answers, and a run under ANSWERED_MIN is
  marked failed. Responses still in flight when the duration ends may add DATA,
  so the fraction can exceed 1 by up to connections x streams / n.
"""

import glob
import json
import math
import os
import re
import sys

ANSWERED_MIN = 0.999

LABELS = {
    "echo": "Echo",
    "score": "Score",
    "segment": "Segment",
    "recommend": "Recommend",
    "score-batch": "ScoreBatch",
    "query": "QueryRelationships (top 100, two filters)",
    "summarize": "SummarizeBook",
}


def nearest_rank(sorted_values, q):
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def parse_out(text):
    figures = {}
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
    if not m:
        raise SystemExit("h2load printed no 'finished in' line")
    figures["req_per_s"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    for k, key in enumerate(["total", "started", "done", "succeeded", "failed", "errored", "timeout"]):
        figures[key] = int(m.group(k + 1))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    figures["status_2xx"] = int(m.group(1))
    m = re.search(r"traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers .*, \S+ \((\d+)\) data", text)
    figures["bytes_total"], figures["bytes_headers"], figures["bytes_data"] = map(int, m.groups())
    return figures


def run(base, frame_bytes, per_call):
    with open(base + ".out") as f:
        figures = parse_out(f.read())
    durations, not_200 = [], 0
    with open(base + ".log") as f:
        for line in f:
            _, status, micros = line.split("\t")
            durations.append(int(micros))
            not_200 += status != "200"
    durations.sort()
    with open(base + ".cpu") as f:
        ticks = [int(x) for x in f.read().split()]
    if len(ticks) != 2:
        raise SystemExit(f"{base}.cpu: want two samples, got {ticks}")
    n = len(durations)
    answered = figures["bytes_data"] / (n * frame_bytes) if n else 0.0
    tick = os.sysconf("SC_CLK_TCK")
    figures.update(
        requests=n,
        not_200=not_200,
        p50_us=nearest_rank(durations, 0.50) if n else None,
        p99_us=nearest_rank(durations, 0.99) if n else None,
        cpu_ticks=ticks[1] - ticks[0],
        clk_tck=tick,
        cpu_us_per_call=(ticks[1] - ticks[0]) / tick * 1e6 / n if n else None,
        frame_bytes=frame_bytes,
        answered=answered,
        relationships_per_call=per_call,
    )
    problems = []
    if n == 0:
        problems.append("no requests")
    if not_200 or figures["failed"] or figures["errored"] or figures["timeout"]:
        problems.append(f"{not_200} non-200, {figures['failed']} failed, {figures['errored']} errored, "
                        f"{figures['timeout']} timed out")
    if answered < ANSWERED_MIN:
        problems.append(f"answered {answered:.4f} < {ANSWERED_MIN}: responses without the verified message")
    figures["problems"] = problems
    with open(base + ".json", "w") as f:
        json.dump(figures, f, indent=1)
    line = (f"{os.path.basename(base)}: {figures['req_per_s']:.0f} req/s, p50 {figures['p50_us']} µs, "
            f"p99 {figures['p99_us']} µs, server {figures['cpu_us_per_call']:.2f} µs CPU/call, "
            f"answered {answered:.4f}")
    print(line + ("  FAILED: " + "; ".join(problems) if problems else ""))
    return 1 if problems else 0


def fmt_int(x):
    return f"{x:,.0f}"


def table(out):
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    runs = {}
    for path in glob.glob(os.path.join(out, "raw", "*.json")):
        # raw/VERSION-MODE-TARGET-ROUND.json
        v, mode, rest = os.path.basename(path)[:-5].split("-", 2)
        target, rnd = rest.rsplit("-", 1)
        with open(path) as f:
            runs[(v, mode, target, int(rnd))] = json.load(f)
    versions = meta["versions"]
    rounds = range(1, meta["rounds"] + 1)

    def cells(mode, target, show):
        row = []
        for v in versions:
            got = []
            for r in rounds:
                run_ = runs.get((v, mode, target, r))
                echo = runs.get((v, mode, "echo", r))
                got.append("–" if run_ is None else show(run_, echo))
            row.append(" / ".join(got))
        return row

    def throughput(run_, echo):
        if run_["relationships_per_call"] > 1:
            return fmt_int(run_["req_per_s"] * run_["relationships_per_call"])
        ratio = f" ({run_['req_per_s'] / echo['req_per_s']:.3f})" if echo and echo is not run_ else ""
        return fmt_int(run_["req_per_s"]) + ratio

    def single(run_, echo):
        delta = f" ({run_['p50_us'] - echo['p50_us']:+d})" if echo and echo is not run_ else ""
        return f"{run_['p50_us']}{delta}"

    lines = []
    head = "| | " + " | ".join(f"{v}: `{meta['labels'][v]}`" for v in versions) + " |"
    rule = "|---|" + "---:|" * len(versions)
    lines.append(f"`{meta['command']}`")
    lines.append("")
    lines.append(f"{meta['start']} – {meta['end']}; `nproc` {meta['nproc']}; load average before "
                 f"{meta['load_before']}, after {meta['load_after']}. Each server: "
                 f"`{meta['serve']}` on its own copy of one store. Per run: "
                 f"`{meta['h2load']}` (TARGET's body and path), "
                 + (f"after {meta['warmup']:g} s of the same without the log; " if meta["warmup"] else "no warm-up; ")
                 + f"{meta['rounds']} round(s), "
                 f"servers alternating within each target, order reversed every other round; "
                 f"each cell is round 1 / round 2 / …. Unary ids: `{meta['id']}`; ScoreBatch: "
                 f"{meta['batch_size']} ids. p50/p99: nearest rank over h2load's per-request log; "
                 f"server CPU: utime+stime of the server over the main duration / requests.")
    lines.append("")
    lines.append(f"**{meta['connections']} connections × {meta['streams']} streams** "
                 f"(requests/s, ratio to Echo in the same round; ScoreBatch in relationships/s)")
    lines.append("")
    lines.append(head)
    lines.append(rule)
    for target in meta["targets"]:
        label = LABELS[target]
        unit = "relationships/s" if target == "score-batch" else "requests/s"
        lines.append(f"| {label} {unit} | " + " | ".join(cells("c64", target, throughput)) + " |")
        for q in ("p50", "p99"):
            lines.append(f"| {label} {q} µs | " + " | ".join(
                cells("c64", target, lambda r, e: f"{r[q + '_us']:,}")) + " |")
        lines.append(f"| {label} server CPU µs/call | " + " | ".join(
            cells("c64", target, lambda r, e: f"{r['cpu_us_per_call']:.2f}")) + " |")
    if meta["single_targets"]:
        lines.append("")
        lines.append("**1 connection × 1 stream** (p50 µs, difference from Echo's in the same round)")
        lines.append("")
        lines.append(head)
        lines.append(rule)
        for target in meta["single_targets"]:
            lines.append(f"| {LABELS[target]} p50 µs | " + " | ".join(cells("c1", target, single)) + " |")
        for target in meta["single_targets"]:
            lines.append(f"| {LABELS[target]} server CPU µs/call | " + " | ".join(
                cells("c1", target, lambda r, e: f"{r['cpu_us_per_call']:.2f}")) + " |")
    failed = sorted(f"{'-'.join(map(str, k))}: {'; '.join(r['problems'])}" for k, r in runs.items() if r["problems"])
    if failed:
        lines.append("")
        lines.append("**Failed runs** (not real answers; do not use their figures): " + ", ".join(failed))
    print("\n".join(lines))
    return 1 if failed else 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    if len(sys.argv) == 3 and sys.argv[1] == "table":
        sys.exit(table(sys.argv[2]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
