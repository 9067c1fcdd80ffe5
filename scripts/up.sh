#!/usr/bin/env bash
# Sets Loom up on this machine and runs it on the real model: installs what it
# needs, fetches SmolLM2-135M-Instruct, builds, and answers a sample question.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export LOOM_MODEL="$(bash scripts/fetch-model.sh)"
swift build -c release --product loom
echo "--- loom generate --chat (model: $LOOM_MODEL)" >&2
.build/release/loom generate --chat --max-tokens 96 --prompt "${1:-What is the capital of France? Answer in one sentence.}"
