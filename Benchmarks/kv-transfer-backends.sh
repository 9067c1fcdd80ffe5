#!/usr/bin/env bash
# KV transfer between a prefill and a decode worker, shm against fabric
# (libfabric tcp;ofi_rxm), on one machine: every request is disaggregated
# (threshold 0), and the router's loom_kv_transfer_seconds gives the mean
# time a prefill worker spent writing one request's KV. Each way runs
# `runs` times, alternating.
# Needs: a release build of loom (swift build -c release --product loom),
# LOOM_MODEL (or the model the README's first command fetches), libfabric.
# Usage: bash Benchmarks/kv-transfer-backends.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-2}"
LOOM=${LOOM:-.build/release/loom}
export LOOM_MODEL=${LOOM_MODEL:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=$(mktemp -d)
UP_PID=
trap '[ -n "$UP_PID" ] && kill -INT "$UP_PID" 2>/dev/null; rm -rf "$OUT"' EXIT
config() {
    local extra=$1
    cat <<YAML
router: {port: 8190, rpc_port: 7720, disaggregation_threshold: 0}
workers:
  - {name: prefill-0, role: prefill, port: 7730$extra}
  - {name: decode-0, role: decode, port: 7731$extra}
logs: $OUT/logs
YAML
}
config "" > "$OUT/shm.yaml"
config ', fabric_provider: "tcp;ofi_rxm"' > "$OUT/fabric.yaml"
for run in $(seq "$runs"); do
    for way in shm fabric; do
        "$LOOM" up --config "$OUT/$way.yaml" > "$OUT/up.out" 2> "$OUT/up.err" & UP_PID=$!
        for _ in $(seq 240); do grep -q "cluster ready" "$OUT/up.out" && break; sleep 0.5; done
        "$LOOM" bench serve --url http://127.0.0.1:8190 --workload mixed --requests 32 --concurrency 2 --max-tokens 4 --seed 3 --json > /dev/null 2>&1
        curl -s http://127.0.0.1:8190/metrics | python3 -c '
import json, sys
m = {l.split()[0]: float(l.split()[1]) for l in sys.stdin if l.startswith("loom_kv_")}
n = m["loom_kv_transfer_seconds_count"]
print(json.dumps({"way": sys.argv[1], "requests": int(n), "blocks": int(m["loom_kv_blocks_transferred_total"]),
                  "mean_transfer_ms": round(1000 * m["loom_kv_transfer_seconds_sum"] / n, 2)}))' "$way"
        kill -INT "$UP_PID"; wait "$UP_PID" || true; UP_PID=
    done
done
