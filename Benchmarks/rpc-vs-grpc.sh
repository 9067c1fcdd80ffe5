#!/usr/bin/env bash
# Loom's RPC p50 round trip next to grpc-swift-2 unary, in the same run on the
# same machine (issue 4: Loom's p50 at least 2x lower than gRPC's). Both echo a
# 32-byte message over loopback TCP, one call at a time, after 500 warm-up calls.
# Builds nothing; build both first (release):
#   swift build -c release --product loom
#   swift build -c release --package-path Benchmarks/grpc-compare
# Usage: bash Benchmarks/rpc-vs-grpc.sh [runs]      (default 3)
#   NIO_EXECUTOR=1 bash Benchmarks/rpc-vs-grpc.sh   runs all four processes with
#   --nio-executor (Swift tasks on NIO's event loop threads).
# Prints each bench's JSON line, then one line with the ratio of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"

# Loom's side: one peer server for the whole run, as gRPC's, measured with
# `loom bench rpc --connect`.
loom=.build/release/loom
loom_serve=("$loom" bench peer-server --region-bytes $((1 << 20)))
loom_bench=("$loom" bench rpc --json)

grpc=Benchmarks/grpc-compare/.build/release/grpc-echo
[ -x "$loom" ] || { echo "build it first: swift build -c release --product loom" >&2; exit 1; }
[ -x "$grpc" ] || { echo "build it first: swift build -c release --package-path Benchmarks/grpc-compare" >&2; exit 1; }
executor=()
[ "${NIO_EXECUTOR:-0}" = 1 ] && executor=(--nio-executor)

loom_out=$(mktemp); grpc_out=$(mktemp); results=$(mktemp)
loom_pid=""; grpc_pid=""
trap 'kill $loom_pid $grpc_pid 2>/dev/null || true; rm -f "$loom_out" "$grpc_out" "$results"' EXIT
"${loom_serve[@]}" --port 0 "${executor[@]}" > "$loom_out" 2>&1 & loom_pid=$!
"$grpc" serve --port 0 "${executor[@]}" > "$grpc_out" 2>&1 & grpc_pid=$!
for _ in $(seq 100); do
    grep -q LISTENING "$loom_out" && grep -q LISTENING "$grpc_out" && break
    sleep 0.1
done
loom_port=$(awk '/LISTENING/ {n = split($2, a, ":"); print a[n]; exit}' "$loom_out")
grpc_port=$(awk '/LISTENING/ {n = split($2, a, ":"); print a[n]; exit}' "$grpc_out")
[ -n "$loom_port" ] && [ -n "$grpc_port" ] || { echo "a server did not start:" >&2; cat "$loom_out" "$grpc_out" >&2; exit 1; }

bench_loom() { "${loom_bench[@]}" --connect "127.0.0.1:$loom_port" --calls 5000 "${executor[@]}" | tee -a "$results"; }
bench_grpc() { "$grpc" bench --port "$grpc_port" --calls 5000 --json "${executor[@]}" | tee -a "$results"; }
# Alternate which goes first, so a drift in machine load does not favour one side.
for run in $(seq "$runs"); do
    if (( run % 2 )); then bench_grpc; bench_loom; else bench_loom; bench_grpc; fi
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
p50 = {name: statistics.median(r["p50_rtt_us"] for r in rows if r["bench"] == name) for name in ("grpc", "rpc")}
print(json.dumps({"bench": "rpc-vs-grpc", "runs": len(rows) // 2,
                  "grpc_p50_median_us": p50["grpc"], "loom_p50_median_us": p50["rpc"],
                  "grpc_over_loom": round(p50["grpc"] / p50["rpc"], 2), "goal": ">= 2"}))
PY
