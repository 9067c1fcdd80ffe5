#!/usr/bin/env bash
# What disaggregation costs when the workers are tensor-parallel groups: a
# prefill group of 2 and a decode group of 3 (configs/tp-disaggregated.yaml,
# each group on one core) against one prefill and one decode process on the
# same cores (tp-disaggregated-single.yaml), every prompt prefilled
# remotely, RUNS interleaved rounds. On this machine a group's ranks share
# their core, so the groups compute no faster; what the ratio shows is what
# the split KV transfer (one write per prefill rank and decode rank it
# feeds, plus an immediate to the decode leader) and the rank hops cost.
#
#   Benchmarks/tensor-parallel-disaggregated.sh [RUNS]
# LOOM (.build/release/loom), LOOM_MODEL (the model), REQUESTS (32),
# CONCURRENCY (4), MAX_TOKENS (32).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-$PWD/.build/release/loom}
RUNS=${1:-3}
REQUESTS=${REQUESTS:-32}
CONCURRENCY=${CONCURRENCY:-4}
MAX_TOKENS=${MAX_TOKENS:-32}
OUT=$(mktemp -d)
source Benchmarks/cluster.sh
trap 'stop_cluster; rm -rf "$OUT"' EXIT

# run TAG CONFIG: one round on a fresh cluster; logs `TAG {json}` with the
# bench figures and the router's KV transfer time per request.
run() {
    local tag=$1 config=$2 url
    start_cluster "$config"
    url=$(grep -o 'cluster ready at http://[^ ]*' "$OUT/up" | sed 's/cluster ready at //')
    "$LOOM" bench serve --url "$url" --requests 4 --concurrency 4 --max-tokens 8 --seed 999 > /dev/null 2>&1
    "$LOOM" bench serve --url "$url" --workload plain --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
        --max-tokens "$MAX_TOKENS" --json > "$OUT/bench.json"
    curl -s "$url/metrics" > "$OUT/metrics"
    python3 - "$tag" "$OUT/bench.json" "$OUT/metrics" <<'PY' | tee -a "$OUT/rows"
import json, sys
tag, bench, metrics = sys.argv[1], json.load(open(sys.argv[2])), open(sys.argv[3]).read().splitlines()
def metric(name):
    return sum(float(l.split()[-1]) for l in metrics if l.startswith(name + " ") or l.startswith(name + "{"))
count = metric("loom_kv_transfer_seconds_count")
row = {"ttft_p50_ms": bench["ttft_ms"]["p50"], "itl_p50_ms": bench["itl_ms"]["p50"], "output_tok_s": bench["output_tok_s"],
       "failed": bench["failures"], "kv_transfer_ms": 1000 * metric("loom_kv_transfer_seconds_sum") / max(count, 1), "transfers": count}
print(tag, json.dumps(row))
PY
    stop_cluster
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for _ in $(seq "$RUNS"); do
    run groups Benchmarks/configs/tp-disaggregated.yaml
    run single Benchmarks/configs/tp-disaggregated-single.yaml
done
python3 - "$OUT/rows" <<'PY'
import statistics, sys
sys.path.insert(0, "Benchmarks")
from ratios import tagged_rows, ratio, spread
rows = tagged_rows(sys.argv[1])
for field in ["ttft_p50_ms", "itl_p50_ms", "output_tok_s", "kv_transfer_ms"]:
    print(f"{field}: groups (prefill 2, decode 3) / single processes: {ratio(rows['groups'], rows['single'], field)}; "
          f"groups {spread([r[field] for r in rows['groups']], '')}, single {spread([r[field] for r in rows['single']], '')}")
print("failed requests:", sum(r["failed"] for r in rows["groups"] + rows["single"]))
PY
