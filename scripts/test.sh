#!/usr/bin/env bash
# Runs Loom's whole test suite: unit tests on tiny generated models and the
# real-model tests (fidelity against llama.cpp's golden outputs). Real-model
# tests need numeric speed, so everything runs on one optimized build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export LOOM_MODEL="$(bash scripts/fetch-model.sh)"
swift build -c release -Xswiftc -enable-testing --build-tests
# The network suites run on their own: the real-model tests keep both cores
# (and Swift's cooperative threads) busy for minutes, which would starve the
# event loops that the RPC and transfer tests wait on.
network='LoomWireTests|LoomTransferTests'
swift test -c release -Xswiftc -enable-testing --skip-build --filter "$network" "$@"
# So do the suites of real processes and in-process workers: their KV
# writes land under leases of seconds, which the real-model tests running
# beside them made expire (the suite grew with the KV store's process tests).
processes='LoomClusterE2ETests|LoomWorkerTests'
swift test -c release -Xswiftc -enable-testing --skip-build --filter "$processes" "$@"
swift test -c release -Xswiftc -enable-testing --skip-build --skip "$network|$processes" "$@"
