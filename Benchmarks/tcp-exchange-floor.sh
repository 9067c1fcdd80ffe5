#!/usr/bin/env bash
# What a tcp all-reduce of one decode row could cost at best between two
# network namespaces: a C pair doing the same exchange as two ranks (both
# send, then both spin on recv) and plain ping-pong, alternately, RUNS
# times each. Compare with `allreduce_p50_us` of tensor-parallel-tcp.sh.
#
#   Benchmarks/tcp-exchange-floor.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/netns.sh
RUNS=${1:-3}
BIN=$(mktemp -d)/exchange
cc -O2 -o "$BIN" Benchmarks/exchange-floor/exchange.c
make_netns loomtp-x vtx0 vtx1 10.236.0
for run in $(seq "$RUNS"); do
    for mode in 0 1; do
        port=$((17700 + 2 * run + mode))
        ip netns exec loomtp-x "$BIN" s 10.236.0.2 "$mode" "$port" &
        sleep 0.3
        "$BIN" c 10.236.0.2 "$mode" "$port"
        wait
    done
done
