#!/usr/bin/env bash
# Multi-round chat against the KV store, the workload LMCache and SGLang
# HiCache measure theirs on: USERS conversations of ROUNDS questions, every
# one sent with the conversation so far, round by round and four requests
# at a time, on a worker whose pool cannot keep every history. Four ways in one run, PAIRS times over,
# alternating: no store, the store in DRAM, the store on disk only (4 MiB of
# DRAM), and the store pre-populated (the same conversations run once,
# then the worker's pool cleared). Prints TTFT p50 and output tok/s of
# each against no store (goal: TTFT <= 0.4x, tok/s >= 1.5x).
#
#   Benchmarks/kvstore-multi-round.sh [PAIRS] [USERS] [ROUNDS]
# LOOM (.build/release/loom), LOOMCTL, LOOM_MODEL (the model).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-.build/release/loom}
LOOMCTL=${LOOMCTL:-.build/release/loomctl}
PAIRS=${1:-2}
USERS=${2:-16}
ROUNDS=${3:-4}
OUT=$(mktemp -d)
source Benchmarks/cluster.sh
trap 'stop_cluster; rm -rf "$OUT" /tmp/loom-bench-multi-round-disk' EXIT

bench() {
    "$LOOM" bench serve --url http://127.0.0.1:8190 --workload multi-round --users "$USERS" --rounds "$ROUNDS" \
        --concurrency 4 --max-tokens 24 --seed "$1" --json 2> /dev/null
}

# run NAME CONFIG SEED [prepopulate]: prints "NAME ttft_p50_ms output_tok_s
# ttft_p50_ms_of_each_round".
run() {
    local name=$1 config=$2 seed=$3
    rm -rf /tmp/loom-bench-multi-round-disk
    start_cluster "$config"
    if [ "${4:-}" = prepopulate ]; then
        bench "$seed" > /dev/null
        sleep 1  # the last answers' blocks reach the store
        "$LOOMCTL" --router http://127.0.0.1:8190 cache clear --workers > /dev/null
    fi
    bench "$seed" > "$OUT/report.json"
    python3 - "$name" "$OUT/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[2]))
assert report["failures"] == 0, report["failure_reasons"]
by_round = "/".join(str(round(r["p50"])) for r in report["ttft_ms_by_round"])
print(sys.argv[1], round(report["ttft_ms"]["p50"]), round(report["output_tok_s"], 1), by_round)
PY
    stop_cluster
}

for pair in $(seq "$PAIRS"); do
    run none Benchmarks/configs/multi-round-none.yaml "$pair"
    run dram Benchmarks/configs/multi-round-dram.yaml "$pair"
    run disk Benchmarks/configs/multi-round-disk.yaml "$pair"
    run prepopulated Benchmarks/configs/multi-round-dram.yaml "$pair" prepopulate
done | tee "$OUT/results"
python3 - "$OUT/results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
none = {i: (float(r[1]), float(r[2])) for i, r in enumerate(r for r in rows if r[0] == "none")}
for name in ("dram", "disk", "prepopulated"):
    runs = [r for r in rows if r[0] == name]
    ttft = [float(r[1]) / none[i][0] for i, r in enumerate(runs)]
    tok = [float(r[2]) / none[i][1] for i, r in enumerate(runs)]
    print(f"{name}: TTFT p50 {statistics.median(ttft):.2f}x no store (spread {min(ttft):.2f}-{max(ttft):.2f}), "
          f"output tok/s {statistics.median(tok):.2f}x (spread {min(tok):.2f}-{max(tok):.2f}), n={len(runs)}")
PY
