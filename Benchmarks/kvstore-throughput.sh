#!/usr/bin/env bash
# KV store throughput against the transfer layer's own, in the same run:
# puts and gets of 256 blocks, and raw writes of the same pages, over shm
# on one host and over tcp with the store in another network namespace (a
# host of its own, through a veth pair). RUNS invocations of each,
# alternating; one JSON line per invocation. Goal: put and get >= 0.7x raw.
# Needs root (ip netns).
#
#   Benchmarks/kvstore-throughput.sh [RUNS]
# LOOM (.build/release/loom), LOOM_MODEL (the model).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-.build/release/loom}
RUNS=${1:-3}
NS=loom-kvput
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$NS"
ip link add loom-kvp0 type veth peer name loom-kvp1
ip link set loom-kvp1 netns "$NS"
ip addr add 10.234.0.1/24 dev loom-kvp0
ip link set loom-kvp0 up
ip -n "$NS" addr add 10.234.0.2/24 dev loom-kvp1
ip -n "$NS" link set loom-kvp1 up
ip -n "$NS" link set lo up

for _ in $(seq "$RUNS"); do
    "$LOOM" bench kvstore --backend shm --runs 5 --json 2> /dev/null
    "$LOOM" bench kvstore --backend tcp --runs 5 --netns "$NS" --host 10.234.0.1 --peer-host 10.234.0.2 --json 2> /dev/null
done
