#!/usr/bin/env bash
# Installs the Debian packages Loom builds and tests against, when missing.
set -euo pipefail
# libfabric-dev: the transfer engine's `fabric` backend links libfabric.
# libibverbs-dev: its `verbs` backend links libibverbs (no RDMA NIC needed
# to build or test: without one it reports that and callers fall back).
packages=(python3-pip iproute2 curl libfabric-dev libibverbs-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 && missing=("${missing[@]/python3-pip}")
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
command -v swift >/dev/null || { echo "install-deps: Swift 6 is needed on PATH (https://www.swift.org/install/linux/)" >&2; exit 1; }
# The serve tests drive `loom serve` with the official OpenAI Python client.
if ! python3 -c "import openai" 2>/dev/null; then
    echo "install-deps: installing the openai Python package" >&2
    python3 -m pip install -q openai >&2 || python3 -m pip install -q --break-system-packages openai >&2
fi
