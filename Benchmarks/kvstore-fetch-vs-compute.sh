#!/usr/bin/env bash
# What fetching one 16-token KV block from the store costs against
# computing it with the model: over shm on one host, and over tcp with the
# store in another network namespace (a host of its own, reached through a
# veth pair). The fetch is what a worker does: a get pushed into registered
# pages, then a copy into its pool; the compute is the model's prefill time
# per block on this machine. Goal: fetch <= 0.05x compute. Needs root (ip netns).
#
#   Benchmarks/kvstore-fetch-vs-compute.sh
# LOOM (.build/release/loom), LOOM_MODEL (the model).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-.build/release/loom}
NS=loom-kvfetch
source Benchmarks/netns.sh
make_netns "$NS" loom-kvf0 loom-kvf1 10.233.0

"$LOOM" bench kvstore --backend shm --compute --blocks 128 --json 2> /dev/null
"$LOOM" bench kvstore --backend tcp --compute --blocks 128 --netns "$NS" --host 10.233.0.1 --peer-host 10.233.0.2 --json 2> /dev/null
