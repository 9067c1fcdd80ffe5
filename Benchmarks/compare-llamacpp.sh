#!/usr/bin/env bash
# Runs `loom bench model` and llama.cpp's llama-bench / llama-batched-bench on
# the same model with the same thread count, one after the other, and prints
# Loom / llama.cpp for each measure. Ratios taken in one run are the figures
# that hold on these shared machines; absolute numbers drift.
#
#   Benchmarks/compare-llamacpp.sh [MODEL] [THREADS]
# LLAMA_BIN: folder with llama-bench and llama-batched-bench
#   (default: what ../shared/tools/llamacpp-reference built).
# LOOM: the loom binary (default: .build/release/loom, built with
#   `swift build -c release --product loom`).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-2}
LLAMA_BIN=${LLAMA_BIN:-/tmp/llamacpp-ref/src/vendor/llama.cpp/build/bin}
LOOM=${LOOM:-.build/release/loom}
RUNS=${RUNS:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

rss_mib() { awk -F: '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }

echo "loom bench model ($RUNS runs) ..." >&2
/usr/bin/time -v "$LOOM" bench model --model "$MODEL" --threads "$THREADS" --runs "$RUNS" --json \
    > "$OUT/loom.json" 2> "$OUT/loom.err" || { cat "$OUT/loom.err" >&2; exit 1; }
grep 'median' "$OUT/loom.err" >&2

echo "llama-bench -t $THREADS -p 512 -n 128 ($RUNS reps) ..." >&2
/usr/bin/time -v "$LLAMA_BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r "$RUNS" -o json \
    > "$OUT/bench.json" 2> "$OUT/bench.err" || { cat "$OUT/bench.err" >&2; exit 1; }

echo "llama-batched-bench -t $THREADS -npp 128 -ntg 128 -npl 16 ..." >&2
/usr/bin/time -v "$LLAMA_BIN/llama-batched-bench" -m "$MODEL" -t "$THREADS" -c 4096 -b 2048 -ub 512 \
    -npp 128 -ntg 128 -npl 16 --output-format jsonl \
    > "$OUT/batched.jsonl" 2> "$OUT/batched.err" || { cat "$OUT/batched.err" >&2; exit 1; }

python3 - "$OUT" "$(rss_mib "$OUT/loom.err")" "$(rss_mib "$OUT/bench.err")" "$(rss_mib "$OUT/batched.err")" <<'PY'
import json, sys
out, loom_rss, bench_rss, batched_rss = sys.argv[1], *map(float, sys.argv[2:])
loom = json.load(open(f"{out}/loom.json"))
bench = json.load(open(f"{out}/bench.json"))
pp = next(r["avg_ts"] for r in bench if r["n_prompt"] == 512 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in bench if r["n_gen"] == 128 and r["n_prompt"] == 0)
batched = [json.loads(l) for l in open(f"{out}/batched.jsonl") if l.startswith("{")]
s_tg = batched[-1]["speed_tg"]
# Limits on this machine (../shared/BENCHMARKING.md): fp32 sgemm ~140 GFLOP/s
# over ~0.27 GFLOP/token; ~21 GB/s over ~92 MB of weights per decoded token.
limits = {"prefill": 500.0, "decode": 200.0}
rows = [
    ("prefill tok/s (pp512)", loom["prefill_tok_s"], pp, limits["prefill"]),
    ("decode tok/s (tg128)", loom["decode_tok_s"], tg, limits["decode"]),
    ("16-seq decode tok/s (S_TG)", loom["batch16_decode_tok_s"], s_tg, None),
    ("peak RSS MiB", loom_rss, max(bench_rss, batched_rss), None),
]
print(f"{'measure':30} {'loom':>9} {'llama.cpp':>10} {'ratio':>7} {'loom/limit':>10}")
for name, a, b, limit in rows:
    share = f"{a / limit:.0%}" if limit else "-"
    print(f"{name:30} {a:9.1f} {b:10.1f} {a / b:6.2f}x {share:>10}")
PY
