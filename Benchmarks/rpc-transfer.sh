#!/usr/bin/env bash
# Measures LoomWire RPC and the tcp/shm/fabric transfer backends on loopback
# with `loom bench rpc|transfer`, next to their references in the same run:
# sockperf ping-pong (raw TCP round trip), iperf3 (loopback TCP bandwidth),
# memcpy (measured by `loom bench transfer`) and, for the fabric backend on
# libfabric's tcp;ofi_rxm provider, fi_pingpong.
# Two floors are measured beside them, to show how much of each gap is
# Loom's: swift-nio alone doing a 32-byte echo (Benchmarks/nio-floor, the
# layer LoomWire runs on), and a C ping-pong of 64-byte RMA writes with
# completion data over the same provider (Benchmarks/fabric-floor), once
# with fi_pingpong's completion semantics and once with Loom's (delivery
# complete, each write's completion awaited).
# Each `loom bench` starts its own peer server as a second process and stops
# it; every measure warms up first, so a fresh server costs nothing timed.
# Needs: apt-get install sockperf iperf3 libfabric-bin; a release build of loom:
#   swift build -c release --product loom
# Usage: bash Benchmarks/rpc-transfer.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
loom=.build/release/loom
[ -x "$loom" ] || { echo "build it first: swift build -c release --product loom" >&2; exit 1; }
swift build -c release --package-path Benchmarks/nio-floor >&2
nio_echo=Benchmarks/nio-floor/.build/release/nio-echo
scratch=$(mktemp -d)
gcc -O2 -I Sources/CLoomFabric/include Benchmarks/fabric-floor/pingpong.c Sources/CLoomFabric/loom_fabric.c -lfabric -o "$scratch/fabric-pingpong"
sockperf_pid=""; iperf_pid=""
nio_pid=""
trap 'kill ${sockperf_pid} ${iperf_pid} ${nio_pid} 2>/dev/null || true; rm -rf "$scratch"' EXIT
for run in $(seq "$runs"); do
    "$loom" bench rpc --json --calls 5000
    "$loom" bench transfer --json --backend tcp --runs 5
    "$loom" bench transfer --json --backend tcp --runs 5 --lanes 1 | sed 's/"backend":"tcp"/"backend":"tcp","lanes":1/'
    "$loom" bench transfer --json --backend shm --runs 5
    "$loom" bench transfer --json --backend fabric --provider "tcp;ofi_rxm" --runs 5 --pings 5000
done
sockperf server --tcp -i 127.0.0.1 -p 11111 > /dev/null 2>&1 & sockperf_pid=$!
"$nio_echo" server 11113 & nio_pid=$!
iperf3 -s -p 5299 > /dev/null 2>&1 & iperf_pid=$!
sleep 1
for run in $(seq "$runs"); do
    sockperf ping-pong --tcp -i 127.0.0.1 -p 11111 -m 32 -t 3 2>&1 \
        | awk '/50.000 =/ {p50=$NF} /99.000 =/ {p99=$NF} END {printf "{\"bench\":\"sockperf\",\"p50_one_way_us\":%s,\"p99_one_way_us\":%s}\n", p50, p99}'
    "$nio_echo" client 11113 5000
done
# iperf3 swings by a quarter between runs on these VMs: as many runs as Loom's.
for run in $(seq "$runs"); do
    # One stream, and four beside Loom's four lanes.
    for streams in 1 4; do
        iperf3 -c 127.0.0.1 -p 5299 -t 5 -P "$streams" -J | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"bench":"iperf3","streams":int(sys.argv[1]),"gbytes_per_s":round(d["end"]["sum_received"]["bits_per_second"]/8e9,3)}))' "$streams"
    done
done
# fi_pingpong's usec/xfer: one message one way, 64 bytes, over tcp;ofi_rxm.
for run in $(seq "$runs"); do
    fi_pingpong -p "tcp;ofi_rxm" -e rdm -S 64 -I 10000 > /dev/null 2>&1 & pingpong_server=$!
    sleep 1
    fi_pingpong -p "tcp;ofi_rxm" -e rdm -S 64 -I 10000 127.0.0.1 \
        | awk '$1 == 64 {printf "{\"bench\":\"fi_pingpong\",\"one_way_us\":%s}\n", $7}'
    wait $pingpong_server || true
done
# The provider's own floor for a write with completion data, both ways.
for run in $(seq "$runs"); do
    for mode in transmit delivery; do
        exchange=$(mktemp -d -p "$scratch")
        "$scratch/fabric-pingpong" server "$exchange" 20000 "$mode" & floor_server=$!
        "$scratch/fabric-pingpong" client "$exchange" 20000 "$mode"
        wait $floor_server
    done
done
