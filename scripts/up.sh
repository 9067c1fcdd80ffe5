#!/usr/bin/env bash
# Sets Loom up on this machine and starts its main job: a local cluster (a
# router, a prefill worker and two decode workers, each its own process)
# serving SmolLM2-135M-Instruct, then sends it a sample request. The cluster
# keeps running until Ctrl-C. Installs what it needs and fetches the model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export LOOM_MODEL="$(bash scripts/fetch-model.sh)"
swift build -c release --product loom
swift build -c release --product loomctl
config="${LOOM_CONFIG:-Configs/local.yaml}"
ready="$(mktemp)"
# loom up prints "cluster ready" once every process is healthy.
.build/release/loom up --config "$config" > >(tee "$ready") &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up; rm -f "$ready"' INT TERM
until grep -q "cluster ready" "$ready"; do
    kill -0 $up 2>/dev/null || { echo "up: loom up exited; see its output above" >&2; exit 1; }
    sleep 0.5
done
url="$(grep -o 'cluster ready at http://[^ ]*' "$ready" | sed 's/cluster ready at //')"
echo "--- sample request: POST $url/v1/chat/completions" >&2
curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"messages\":[{\"role\":\"user\",\"content\":\"${1:-What is the capital of France? Answer in one sentence.}\"}],\"max_tokens\":64,\"temperature\":0}"
echo
.build/release/loomctl --router "$url" status >&2 || true
echo "--- the cluster keeps serving at $url; Ctrl-C stops it" >&2
wait $up
