#!/usr/bin/env bash
# The KV store's "query twice": a ~1,500-token prompt, then two other such
# prompts that push it out of the worker's pool, then the first again. With
# a store node the blocks come back from it; without, they are computed
# again. Prints the second ask's TTFT against the first's, both ways, over
# PAIRS rounds run alternately (goal with the store: <= 0.2x).
#
#   Benchmarks/kvstore-query-twice.sh [PAIRS]
# LOOM (.build/release/loom), LOOM_MODEL (the model).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-.build/release/loom}
PAIRS=${1:-3}
OUT=$(mktemp -d)
source Benchmarks/cluster.sh
trap 'stop_cluster; rm -rf "$OUT"' EXIT

# run NAME CONFIG SEED: start the cluster (bounded wait), ask A, B, C, A;
# print "NAME cold_ms warm_ms".
run() {
    local name=$1 config=$2 seed=$3
    start_cluster "$config"
    python3 - "$name" "$seed" <<'PY'
import json, sys, time, urllib.request
name, seed = sys.argv[1], int(sys.argv[2])
def prompt(topic):
    words = " ".join(f"Note {i} on {topic} (series {seed}): the record shows entry {i * 7 + seed} was filed and checked." for i in range(60))
    return [{"role": "system", "content": words}, {"role": "user", "content": f"What does the record on {topic} say?"}]
def ttft(messages):
    body = json.dumps({"messages": messages, "max_tokens": 4, "temperature": 0, "stream": True}).encode()
    request = urllib.request.Request("http://127.0.0.1:8190/v1/chat/completions", body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        for line in response:
            if line.startswith(b"data: ") and b'"content"' in line:
                first = time.perf_counter() - start
                break
        for _ in response: pass
    return first * 1000
cold = ttft(prompt("harbours"))
for topic in ("orchards", "bridges"): ttft(prompt(topic))
time.sleep(1.0)  # the store has the first prompt's blocks by now
warm = ttft(prompt("harbours"))
print(f"{name} {cold:.0f} {warm:.0f}")
PY
    stop_cluster
}

for pair in $(seq "$PAIRS"); do
    run store Benchmarks/configs/kvstore.yaml "$pair"
    run none Benchmarks/configs/kvstore-none.yaml "$pair"
done | tee "$OUT/results"
python3 - "$OUT/results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for name in ("store", "none"):
    ratios = [int(w) / int(c) for n, c, w in rows if n == name]
    print(f"{name}: second ask / first ask TTFT, median {statistics.median(ratios):.2f}x (spread {min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})")
PY
