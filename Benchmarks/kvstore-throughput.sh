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
source Benchmarks/netns.sh
make_netns "$NS" loom-kvp0 loom-kvp1 10.234.0

for _ in $(seq "$RUNS"); do
    "$LOOM" bench kvstore --backend shm --runs 5 --json 2> /dev/null
    "$LOOM" bench kvstore --backend tcp --runs 5 --netns "$NS" --host 10.234.0.1 --peer-host 10.234.0.2 --json 2> /dev/null
done
