#!/usr/bin/env bash
# Runs Loom's whole test suite: unit tests on tiny generated models and the
# real-model tests (fidelity against llama.cpp's golden outputs). Real-model
# tests need numeric speed, so everything runs on one optimized build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export LOOM_MODEL="$(bash scripts/fetch-model.sh)"
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
