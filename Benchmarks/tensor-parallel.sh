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
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    key, _, rest = line.partition(" {")
    tp, threads = key.split()
    rows.setdefault((tp, threads), []).append(json.loads("{" + rest))
group, two, one = rows[("tp=2", "threads=1")], rows[("tp=1", "threads=2")], rows[("tp=1", "threads=1")]
def ratio(field, base):
    r = sorted(g[field] / b[field] for g, b in zip(group, base))
    return f"{statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})"
for field in ["decode_tok_s", "prefill_tok_s", "batch16_decode_tok_s"]:
    print(f"{field}: TP=2x1 / TP=1x2 {ratio(field, two)}; TP=2x1 / TP=1x1 {ratio(field, one)}")
p50 = sorted(g["allreduce_p50_us"] for g in group)
print(f"all-reduce of one row, p50: {statistics.median(p50):.1f} us ({p50[0]:.1f}-{p50[-1]:.1f})")
PY
rm -f "$OUT"
