#!/usr/bin/env bash
# Serving load, Loom against llama-server, in one run on one machine: starts
# each server alone, waits until it answers, runs `loom bench serve` with the
# same seeded workloads against it, stops it, and prints Loom / llama-server
# ratios for output tok/s and TTFT p50 (issue 5's targets).
#
#   Benchmarks/serve-vs-llamaserver.sh [MODEL] [THREADS]
# LLAMA_BIN: folder with llama-server (default: what
#   ../shared/tools/llamacpp-reference built).
# LOOM: the loom binary (default .build/release/loom, from
#   `swift build -c release --product loom`).
# REQUESTS (64), CONCURRENCY (16), MAX_TOKENS (64), WORKLOADS
#   ("plain shared-prefix"), TIMEOUT per request in s (300), SEED (1).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${LOOM_MODEL:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}}
THREADS=${2:-2}
LLAMA_BIN=${LLAMA_BIN:-/tmp/llamacpp-ref/src/vendor/llama.cpp/build/bin}
LOOM=${LOOM:-.build/release/loom}
REQUESTS=${REQUESTS:-64}
CONCURRENCY=${CONCURRENCY:-16}
MAX_TOKENS=${MAX_TOKENS:-64}
WORKLOADS=${WORKLOADS:-plain shared-prefix}
TIMEOUT=${TIMEOUT:-300}
SEED=${SEED:-1}
OUT=$(mktemp -d)
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Polls URL until it answers 200; gives up after 180 s so a server that
# never comes up cannot hang the script.
wait_ready() {
    for _ in $(seq 360); do
        if curl -sf -o /dev/null "$1"; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited before it was ready" >&2; return 1; }
        sleep 0.5
    done
    echo "server not ready after 180 s: $1" >&2
    return 1
}

# bench NAME URL: a short warm-up (pages the weights in, fills caches no
# workload depends on), then each workload with the same seed.
bench() {
    local name=$1 url=$2
    "$LOOM" bench serve --url "$url" --requests 4 --concurrency 4 --max-tokens 8 --seed 999 \
        --timeout "$TIMEOUT" > /dev/null 2> "$OUT/$name-warmup.err" || { cat "$OUT/$name-warmup.err" >&2; return 1; }
    for workload in $WORKLOADS; do
        echo "$name: $workload, $REQUESTS requests, $CONCURRENCY clients, $MAX_TOKENS tokens ..." >&2
        "$LOOM" bench serve --url "$url" --workload "$workload" --requests "$REQUESTS" \
            --concurrency "$CONCURRENCY" --max-tokens "$MAX_TOKENS" --seed "$SEED" --timeout "$TIMEOUT" --json \
            > "$OUT/$name-$workload.json" 2> "$OUT/$name-$workload.err" || true
        tail -n 1 "$OUT/$name-$workload.err" >&2
        [ -s "$OUT/$name-$workload.json" ] || { cat "$OUT/$name-$workload.err" >&2; return 1; }
    done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$LOOM" serve --model "$MODEL" --threads "$THREADS" --port 0 > "$OUT/loom-serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 360); do
    grep -q 'loom serve: listening on http' "$OUT/loom-serve.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/loom-serve.log" >&2; exit 1; }
    sleep 0.5
done
LOOM_URL=$(grep -o 'loom serve: listening on http://[0-9.]*:[0-9]*' "$OUT/loom-serve.log" | grep -o 'http://.*' | head -n 1)
[ -n "$LOOM_URL" ] || { echo "loom serve printed no address" >&2; cat "$OUT/loom-serve.log" >&2; exit 1; }
wait_ready "$LOOM_URL/v1/models"
bench loom "$LOOM_URL"
stop_server

PORT=$(free_port)
# -np 16 slots over a 16384-token context: 1024 tokens a slot, room for a
# ~520-token shared-prefix prompt plus 64 generated tokens.
"$LLAMA_BIN/llama-server" -m "$MODEL" -t "$THREADS" -np 16 -c 16384 --host 127.0.0.1 --port "$PORT" \
    > "$OUT/llama-server.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT/health" || { tail -n 20 "$OUT/llama-server.log" >&2; exit 1; }
bench llama "http://127.0.0.1:$PORT"
stop_server

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$OUT" $WORKLOADS <<'PY'
import json, sys
out, workloads = sys.argv[1], sys.argv[2:]
def load(name, w): return json.load(open(f"{out}/{name}-{w}.json"))
def p50(r, key): return r[key]["p50"] if r[key] else float("nan")
print(f"{'workload':14} {'server':13} {'ok/all':>7} {'out tok/s':>10} {'TTFT p50':>10} {'TTFT p99':>10} "
      f"{'ITL p50':>9} {'E2E p50':>9} {'tok/req':>8} {'prompt':>7}")
for w in workloads:
    for name, label in (("loom", "loom"), ("llama", "llama-server")):
        r = load(name, w)
        ok = r["requests"] - r["failures"]
        per_req = r["output_tokens"] / ok if ok else 0
        print(f"{w:14} {label:13} {ok:>3}/{r['requests']:<3} {r['output_tok_s']:10.1f} {p50(r, 'ttft_ms'):9.0f}ms "
              f"{(r['ttft_ms'] or {}).get('p99', float('nan')):9.0f}ms {p50(r, 'itl_ms'):7.1f}ms "
              f"{p50(r, 'e2e_ms'):7.0f}ms {per_req:8.1f} {r['prompt_tokens_mean'] or float('nan'):7.1f}")
        for reason in r["failure_reasons"]:
            print(f"{'':28} failure: {reason}")
print()
print(f"{'workload':14} {'tok/s ratio (loom/llama)':>25} {'TTFT p50 ratio (loom/llama)':>28}")
for w in workloads:
    loom, llama = load("loom", w), load("llama", w)
    tok = loom["output_tok_s"] / llama["output_tok_s"] if llama["output_tok_s"] else float("nan")
    ttft = p50(loom, "ttft_ms") / p50(llama, "ttft_ms")
    print(f"{w:14} {tok:24.2f}x {ttft:27.2f}x")
PY
