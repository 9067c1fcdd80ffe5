#!/usr/bin/env bash
# A tensor-parallel group of 2 ranks with 1 thread each against one process
# with 2 threads (the same two cores: the group's cost beyond its compute)
# and with 1 thread (what a second machine adds), interleaved, RUNS rounds.
# One JSON line per invocation (`loom bench model`), then the ratios'
# medians and spreads. Goals: decode and prefill >= 0.95x of TP=1 x 2
# threads over shm; one decode row's all-reduce p50 <= 10 us.
#
#   Benchmarks/tensor-parallel.sh [RUNS]
# LOOM (.build/release/loom), LOOM_MODEL (the model).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${LOOM:-.build/release/loom}
RUNS=${1:-3}
OUT=$(mktemp)
for _ in $(seq "$RUNS"); do
    for shape in "1 2" "2 1" "1 1"; do
        set -- $shape
        line=$("$LOOM" bench model --tp "$1" --threads "$2" --runs 3 --json 2> /dev/null)
        echo "tp=$1 threads=$2 $line" | tee -a "$OUT"
    done
done
python3 - "$OUT" <<'PY'
import statistics, sys
sys.path.insert(0, "Benchmarks")
from ratios import tagged_rows, ratio, spread
rows = tagged_rows(sys.argv[1])
group, two, one = rows["tp=2 threads=1"], rows["tp=1 threads=2"], rows["tp=1 threads=1"]
for field in ["decode_tok_s", "prefill_tok_s", "batch16_decode_tok_s"]:
    print(f"{field}: TP=2x1 / TP=1x2 {ratio(group, two, field)}; TP=2x1 / TP=1x1 {ratio(group, one, field)}")
print(f"all-reduce of one row, p50: {spread([g['allreduce_p50_us'] for g in group], 'us')}")
PY
rm -f "$OUT"
