#!/usr/bin/env bash
# Runs Benchmarks/disaggregation.sh with two loom binaries in ABBA order,
# PAIRS times, so a change's effect on the disaggregated path is read from
# alternating runs on the same machine in the same minutes (the load these
# machines carry moves single runs by ±20%).
#
#   Benchmarks/before-after.sh BEFORE_LOOM AFTER_LOOM [PAIRS]
# Build the "before" binary in a worktree of the older commit:
#   git worktree add /tmp/before <commit> && (cd /tmp/before && swift build -c release --product loom)
# Prints each run's summary lines, prefixed by which binary ran.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?the loom binary before the change}
after=${2:?the loom binary after the change}
pairs=${3:-3}
for _ in $(seq "$pairs"); do
    for who in before after after before; do
        if [ "$who" = before ]; then bin=$before; else bin=$after; fi
        echo "=== $who $(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
        LOOM=$bin bash Benchmarks/disaggregation.sh 2>/dev/null | tail -4
    done
done
