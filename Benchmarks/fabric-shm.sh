#!/usr/bin/env bash
# The fabric backend on libfabric's shm provider (two processes, one host)
# beside its references in the same run: fi_pingpong over shm, and the C
# floor (Benchmarks/fabric-floor) over shm with fi_pingpong's completion
# semantics and with Loom's. Loom refuses shm for workers' KV (a refused
# write wedges the pair, see README), so these numbers are for comparison.
# Needs: apt-get install libfabric-bin; swift build -c release --product loom
# Usage: bash Benchmarks/fabric-shm.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
loom=.build/release/loom
[ -x "$loom" ] || { echo "build it first: swift build -c release --product loom" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
gcc -O2 -I Sources/CLoomFabric/include Benchmarks/fabric-floor/pingpong.c Sources/CLoomFabric/loom_fabric.c -lfabric -o "$scratch/fabric-pingpong"
for run in $(seq "$runs"); do
    "$loom" bench transfer --json --backend fabric --provider shm --runs 3 --pings 5000
    fi_pingpong -p shm -e rdm -S 64 -I 10000 > /dev/null 2>&1 & pingpong_server=$!
    sleep 1
    fi_pingpong -p shm -e rdm -S 64 -I 10000 localhost \
        | awk '$1 == 64 {printf "{\"bench\":\"fi_pingpong\",\"provider\":\"shm\",\"one_way_us\":%s}\n", $7}'
    wait $pingpong_server || true
    for mode in transmit delivery; do
        exchange=$(mktemp -d -p "$scratch")
        "$scratch/fabric-pingpong" server "$exchange" 20000 "$mode" shm & floor_server=$!
        "$scratch/fabric-pingpong" client "$exchange" 20000 "$mode" shm
        wait $floor_server
    done
done
