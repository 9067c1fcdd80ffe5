# Sourced by the benchmark scripts that run a whole cluster: start_cluster
# CONFIG starts `loom up` and waits (bounded) for it to be ready;
# stop_cluster stops it, and runs on exit. Needs LOOM and OUT set.
UP_PID=
stop_cluster() {
    if [ -n "$UP_PID" ]; then
        kill -INT "$UP_PID" 2>/dev/null || true
        wait "$UP_PID" 2>/dev/null || true
        UP_PID=
    fi
}

start_cluster() {
    "$LOOM" up --config "$1" > "$OUT/up" 2> "$OUT/up.err" &
    UP_PID=$!
    for _ in $(seq 600); do
        grep -q "cluster ready" "$OUT/up" && return 0
        kill -0 "$UP_PID" 2>/dev/null || { cat "$OUT/up.err" >&2; return 1; }
        sleep 0.5
    done
    echo "the cluster of $1 was not ready after 5 minutes" >&2
    return 1
}
