#!/usr/bin/env bash
# The anchor a CPU user would reach for to spread a model over two
# machines: llama.cpp split over two `ggml-rpc-server` processes (1 thread
# each; llama-bench itself with 1 thread), against Loom's TP=2 with 1
# thread per rank, interleaved, RUNS rounds, same model. llama.cpp's RPC
# backend splits the layers, so its two servers take turns; Loom's ranks
# each hold half of every layer. Goal: Loom's decode >= 3x llama.cpp's.
#
#   Benchmarks/tensor-parallel-vs-llamacpp-rpc.sh [RUNS]
# LOOM (.build/release/loom), LOOM_MODEL (the model), LLAMA_DIR (the
# llama-cpp-python source tree of ../shared/tools/llamacpp-reference,
# default /tmp/llamacpp-ref/src). Builds llama.cpp with -DGGML_RPC=ON into
# $LLAMA_DIR/vendor/llama.cpp/build-rpc the first time (~15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-$PWD/.build/release/loom}
MODEL=${LOOM_MODEL:?set LOOM_MODEL to the model}
RUNS=${1:-3}
LLAMA=${LLAMA_DIR:-/tmp/llamacpp-ref/src}/vendor/llama.cpp
BIN=$LLAMA/build-rpc/bin
if [ ! -x "$BIN/ggml-rpc-server" ] || [ ! -x "$BIN/llama-bench" ]; then
    [ -d "$LLAMA" ] || { echo "no llama.cpp source at $LLAMA: run ../shared/tools/llamacpp-reference first" >&2; exit 1; }
    cmake -S "$LLAMA" -B "$LLAMA/build-rpc" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DGGML_RPC=ON \
        -DLLAMA_BUILD_TESTS=OFF > /dev/null
    cmake --build "$LLAMA/build-rpc" -j"$(nproc)" --target ggml-rpc-server llama-bench > /dev/null
fi
"$BIN/ggml-rpc-server" -p 50152 -t 1 > /dev/null 2>&1 &
a=$!
"$BIN/ggml-rpc-server" -p 50153 -t 1 > /dev/null 2>&1 &
b=$!
trap 'kill $a $b 2> /dev/null || true' EXIT
sleep 1
OUT=$(mktemp)
for _ in $(seq "$RUNS"); do
    "$BIN/llama-bench" -m "$MODEL" --rpc 127.0.0.1:50152,127.0.0.1:50153 -t 1 -p 512 -n 128 -r 3 -o json 2> /dev/null \
        | python3 -c 'import json, sys
rows = json.load(sys.stdin)
print("rpc", json.dumps({"prefill_tok_s": next(r["avg_ts"] for r in rows if r["n_prompt"]), "decode_tok_s": next(r["avg_ts"] for r in rows if r["n_gen"])}))' | tee -a "$OUT"
    line=$("$LOOM" bench model --model "$MODEL" --tp 2 --threads 1 --runs 3 --json 2> /dev/null)
    echo "loom $line" | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import statistics, sys
sys.path.insert(0, "Benchmarks")
from ratios import tagged_rows, ratio
rows = tagged_rows(sys.argv[1])
for field in ["decode_tok_s", "prefill_tok_s"]:
    print(f"{field}: Loom TP=2x1 / llama.cpp over 2 rpc-servers x1: {ratio(rows['loom'], rows['rpc'], field)}; "
          f"llama.cpp median {statistics.median(c[field] for c in rows['rpc']):.1f} tok/s")
PY
rm -f "$OUT"
