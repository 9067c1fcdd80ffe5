#!/usr/bin/env bash
# Splitwise's claim on this machine: a prefill worker and a decode worker
# pinned to one core each (Benchmarks/configs/disaggregated.yaml) against one
# mixed worker on both cores (aggregated.yaml), under a mixed workload where
# long prompts arrive while other requests decode. Prints the inter-token
# latency p90 ratio (goal <= 0.5) and the throughput ratio (goal >= 0.8).
#
#   Benchmarks/disaggregation.sh
# LOOM (.build/release/loom), REQUESTS (48), CONCURRENCY (8), MAX_TOKENS (64),
# SEED (1), LOOM_MODEL (the model).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-.build/release/loom}
REQUESTS=${REQUESTS:-48}
CONCURRENCY=${CONCURRENCY:-8}
MAX_TOKENS=${MAX_TOKENS:-64}
SEED=${SEED:-1}
OUT=$(mktemp -d)
source Benchmarks/cluster.sh
trap 'stop_cluster; rm -rf "$OUT"' EXIT

# run NAME CONFIG: start the cluster, wait until `loom up` says it is ready
# (bounded), warm it up, measure, stop it.
run() {
    local name=$1 config=$2
    start_cluster "$config"
    local url
    url=$(grep -o 'cluster ready at http://[^ ]*' "$OUT/up" | sed 's/cluster ready at //')
    "$LOOM" bench serve --url "$url" --requests 4 --concurrency 4 --max-tokens 8 --seed 999 > /dev/null 2>&1
    echo "$name: mixed workload, $REQUESTS requests, $CONCURRENCY clients, $MAX_TOKENS tokens ..." >&2
    "$LOOM" bench serve --url "$url" --workload mixed --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
        --max-tokens "$MAX_TOKENS" --seed "$SEED" --json > "$OUT/$name.json"
    cat "$OUT/$name.json"
    stop_cluster
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run aggregated Benchmarks/configs/aggregated.yaml
run disaggregated Benchmarks/configs/disaggregated.yaml
python3 - "$OUT/aggregated.json" "$OUT/disaggregated.json" <<'PY'
import json, sys
agg, dis = (json.load(open(p)) for p in sys.argv[1:3])
itl = dis["itl_ms"]["p90"] / agg["itl_ms"]["p90"]
tput = dis["output_tok_s"] / agg["output_tok_s"]
print(f"ITL p90: disaggregated {dis['itl_ms']['p90']:.1f} ms / aggregated {agg['itl_ms']['p90']:.1f} ms = {itl:.2f}x (goal <= 0.5)")
print(f"output tok/s: disaggregated {dis['output_tok_s']:.1f} / aggregated {agg['output_tok_s']:.1f} = {tput:.2f}x (goal >= 0.8)")
print(f"TTFT p50: disaggregated {dis['ttft_ms']['p50']:.0f} ms, aggregated {agg['ttft_ms']['p50']:.0f} ms")
# Three requests in four have short prompts the decode worker prefills
# itself; the long ones, prefilled on the other core, are the tail.
print(f"TTFT p90: disaggregated {dis['ttft_ms']['p90']:.0f} ms, aggregated {agg['ttft_ms']['p90']:.0f} ms")
PY
