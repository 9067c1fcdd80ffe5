#!/usr/bin/env bash
# A tensor-parallel group of 2 ranks, 1 thread each, with rank 1 in a
# network namespace of its own (tcp over a veth pair, as between hosts),
# against one process with 2 threads, interleaved, RUNS rounds; then
# sockperf's round trip of one decode row (2304 bytes) between the same
# two namespaces, blocking and spinning. Goals: decode >= 0.85x of
# TP=1 x 2 threads; one row's all-reduce p50 <= 1.3x sockperf's round trip.
#
#   Benchmarks/tensor-parallel-tcp.sh [RUNS]
# LOOM (.build/release/loom), LOOM_MODEL (the model). Needs root (ip
# netns) and sockperf (apt-get install sockperf).
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/netns.sh
LOOM=${LOOM:-$PWD/.build/release/loom}
MODEL=${LOOM_MODEL:?set LOOM_MODEL to the model}
RUNS=${1:-3}
OUT=$(mktemp)
make_netns loomtp-b vtp0 vtp1 10.234.0
LEADER=10.234.0.1
for round in $(seq "$RUNS"); do
    port=$((17100 + round))
    ip netns exec loomtp-b "$LOOM" worker --name tp-rank-1 --model "$MODEL" --threads 1 --tp-size 2 --tp-rank 1 \
        --tp-peers "$LEADER:$port" --tp-join-seconds 60 2> /dev/null &
    line=$("$LOOM" bench model --model "$MODEL" --tp 2 --threads 1 --tp-peers "$LEADER:$port" --runs 3 --json 2> /dev/null)
    wait
    echo "tcp $line" | tee -a "$OUT"
    line=$("$LOOM" bench model --model "$MODEL" --threads 2 --runs 3 --json 2> /dev/null)
    echo "one $line" | tee -a "$OUT"
    # The round trip in every round too: it swings as much as the rest.
    for mode in blocking spinning; do
        flags=$([ "$mode" = spinning ] && echo --nonblocked || true)
        ip netns exec loomtp-b sockperf server --tcp -i 10.234.0.2 -p 11111 $flags > /dev/null 2>&1 &
        server=$!
        sleep 1
        rtt=$(sockperf ping-pong --tcp -i 10.234.0.2 -p 11111 -m 2304 -t 5 --full-rtt $flags 2>&1 | awk '/percentile 50.000/ {print $NF}')
        kill "$server"; wait "$server" 2> /dev/null || true
        echo "sockperf-$mode {\"rtt_p50_us\": $rtt}" | tee -a "$OUT"
    done
done
python3 - "$OUT" <<'PY'
import statistics, sys
sys.path.insert(0, "Benchmarks")
from ratios import tagged_rows, ratio, spread
rows = tagged_rows(sys.argv[1])
group, one = rows["tcp"], rows["one"]
for field in ["decode_tok_s", "prefill_tok_s", "batch16_decode_tok_s"]:
    print(f"{field}: TP=2x1 over tcp / TP=1x2 {ratio(group, one, field)}")
p50 = [g["allreduce_p50_us"] for g in group]
print(f"all-reduce of one row over tcp, p50: {spread(p50, 'us')}")
for mode in ["blocking", "spinning"]:
    trips = rows[f"sockperf-{mode}"]
    paired = [{"us": g["allreduce_p50_us"]} for g in group]
    print(f"sockperf round trip ({mode}), p50: {spread([t['rtt_p50_us'] for t in trips], 'us')}; "
          f"all-reduce / round trip of the same round {ratio(paired, [{'us': t['rtt_p50_us']} for t in trips], 'us')}")
PY
rm -f "$OUT"
