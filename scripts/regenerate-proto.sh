#!/usr/bin/env bash
# Regenerates the committed Swift for proto/*.proto. Not part of the build or CI:
# run it by hand after editing a .proto, and commit the output.
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift from
# swift-protobuf 1.39.0 (the version Package.swift pins); build the plugin once:
#   git clone -b 1.39.0 https://github.com/apple/swift-protobuf /tmp/sp
#   (cd /tmp/sp && swift build --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/sp/.build/debug/protoc-gen-swift bash scripts/regenerate-proto.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
[ -x "$plugin" ] || { echo "regenerate-proto: set PROTOC_GEN_SWIFT to a built protoc-gen-swift" >&2; exit 1; }
command -v protoc >/dev/null || { echo "regenerate-proto: apt-get install protobuf-compiler" >&2; exit 1; }
# Each proto belongs to the target whose layer it describes: the RPC's own
# messages to LoomWire, the transfer engine's to LoomTransfer, the cluster's
# (router and roles) and the KV store's to LoomProtocol; only those two
# import each other (a store node reports its stats in its heartbeat).
generate() {
    local proto=$1 out=$2
    mkdir -p "$out"
    protoc --plugin=protoc-gen-swift="$plugin" \
        --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
        -I proto --swift_out="$out" "proto/$proto"
    echo "regenerate-proto: wrote $out/${proto%.proto}.pb.swift" >&2
}
generate loom_wire.proto Sources/LoomWire/Generated
generate loom_transfer.proto Sources/LoomTransfer/Generated
generate loom_cluster.proto Sources/LoomProtocol/Generated
generate loom_kvstore.proto Sources/LoomProtocol/Generated
generate loom_group.proto Sources/LoomProtocol/Generated
