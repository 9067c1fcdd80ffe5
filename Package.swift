// swift-tools-version: 6.0
import PackageDescription

// Kernels are compiled with optimization even in debug builds: unit tests run
// real matmuls and an -O0 C loop is 20x slower than the code we ship.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
    name: "Loom",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .executable(name: "loomctl", targets: ["loomctl"]),
        .library(name: "LoomModel", targets: ["LoomModel"]),
        .library(name: "LoomEngine", targets: ["LoomEngine"]),
        .library(name: "LoomTesting", targets: ["LoomTesting"]),
        .library(name: "LoomWire", targets: ["LoomWire"]),
        .library(name: "LoomProtocol", targets: ["LoomProtocol"]),
        .library(name: "LoomTransfer", targets: ["LoomTransfer"]),
        .library(name: "LoomHTTP", targets: ["LoomHTTP"]),
        .library(name: "LoomWorker", targets: ["LoomWorker"]),
        .library(name: "LoomTensorParallel", targets: ["LoomTensorParallel"]),
        .library(name: "LoomCluster", targets: ["LoomCluster"]),
        .library(name: "LoomRouter", targets: ["LoomRouter"]),
        .library(name: "LoomKVStore", targets: ["LoomKVStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(name: "CLoomKernels", cSettings: kernelFlags),
        .target(name: "LoomKernels", dependencies: ["CLoomKernels"]),
        // libfabric (Debian: libfabric-dev) behind a thin C layer, for the
        // transfer engine's `fabric` backend.
        .target(name: "CLoomFabric", linkerSettings: [.linkedLibrary("fabric")]),
        // C11 atomics and futex on words in shared memory, for the `shm`
        // backend's doorbell; no library beyond libc.
        .target(name: "CLoomShm"),
        // libibverbs (Debian: libibverbs-dev) behind a thin C layer, for the
        // transfer engine's `verbs` backend (RC queue pairs, RDMA WRITE WITH IMM).
        .target(name: "CLoomVerbs", linkerSettings: [.linkedLibrary("ibverbs")]),
        .target(name: "LoomModel", dependencies: ["LoomKernels"]),
        .target(name: "LoomEngine", dependencies: ["LoomModel", "LoomKernels"]),
        // What tests of every layer share: tiny models and a GGUF writer, an
        // in-memory transport, a fault-injecting one, a manual clock.
        .target(
            name: "LoomTesting",
            dependencies: [
                "LoomModel", "LoomKernels", "LoomTransfer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(
            name: "LoomHTTP",
            dependencies: [
                "LoomModel", "LoomEngine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The load generator talks to any OpenAI-compatible server, so it
        // depends on an HTTP client and nothing of Loom's own.
        .target(
            name: "LoomBench",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "loom",
            dependencies: [
                "LoomModel", "LoomEngine", "LoomHTTP", "LoomCluster", "LoomProtocol", "LoomRouter", "LoomWorker", "LoomKVStore", "LoomWire", "LoomTransfer", "LoomBench", "LoomPeer", "LoomTensorParallel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "LoomWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The cluster's own protocol, shared by the router and every role:
        // the messages in proto/loom_cluster.proto and loom_kvstore.proto,
        // the RPC method tables, the error codes, and the link every member
        // keeps to the router. No transfer backends, so the router links none.
        .target(
            name: "LoomProtocol",
            dependencies: [
                "LoomWire", "LoomEngine", "LoomModel",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "LoomTransfer",
            dependencies: [
                "LoomWire", "CLoomFabric", "CLoomShm", "CLoomVerbs",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // Tensor-parallel groups: a rank's slice of every forward pass, the
        // leader's step plans, and the all-reduces between ranks, over
        // regions registered with the transfer layer.
        .target(
            name: "LoomTensorParallel",
            dependencies: [
                "LoomModel", "LoomProtocol", "LoomWire", "LoomTransfer", "CLoomShm",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "LoomWorker",
            dependencies: [
                "LoomEngine", "LoomModel", "LoomProtocol", "LoomWire", "LoomTransfer", "LoomKVStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The KV-cache store role: blocks by chain hash in a DRAM tier (and
        // a disk tier), written and read one-sided over the transfer layer.
        .target(
            name: "LoomKVStore",
            dependencies: [
                "LoomEngine", "LoomModel", "LoomKernels", "LoomProtocol", "LoomTransfer", "LoomWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "LoomCluster", dependencies: ["LoomEngine", "LoomProtocol", "LoomWire", .product(name: "Yams", package: "Yams")]),
        .target(
            name: "LoomRouter",
            dependencies: [
                "LoomCluster", "LoomEngine", "LoomModel", "LoomHTTP", "LoomProtocol", "LoomWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "loomctl",
            dependencies: ["LoomRouter", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The RPC and transfer benchmarks' two sides, for `loom bench rpc|transfer`
        // and for `loom-peer`, the process the multi-host tests start.
        .target(
            name: "LoomPeer",
            dependencies: [
                "LoomTransfer", "LoomWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "loom-peer",
            dependencies: [
                "LoomPeer", "LoomTransfer", "LoomWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "LoomTransferTests", dependencies: ["LoomTransfer", "LoomWire", "LoomTesting"]),
        .testTarget(
            name: "LoomWireTests",
            dependencies: [
                "LoomWire",
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "LoomKernelsTests", dependencies: ["LoomKernels", "LoomTesting"]),
        .testTarget(name: "LoomModelTests", dependencies: ["LoomModel", "LoomTesting"]),
        .testTarget(name: "LoomTensorParallelTests", dependencies: ["LoomTensorParallel", "LoomModel", "LoomEngine", "LoomTransfer", "LoomTesting"]),
        .testTarget(name: "LoomEngineTests", dependencies: ["LoomEngine", "LoomTesting"]),
        .testTarget(
            name: "LoomHTTPTests",
            dependencies: [
                "LoomHTTP", "LoomEngine", "LoomModel", "LoomTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "LoomKVStoreTests",
            dependencies: ["LoomKVStore", "LoomEngine", "LoomModel", "LoomKernels", "LoomProtocol", "LoomTransfer", "LoomWire", "LoomTesting"]
        ),
        .testTarget(name: "LoomWorkerTests", dependencies: ["LoomWorker", "LoomEngine", "LoomModel", "LoomProtocol", "LoomWire", "LoomTransfer", "LoomTesting"]),
        .testTarget(
            name: "LoomRouterTests",
            dependencies: [
                "LoomRouter", "LoomCluster", "LoomEngine", "LoomModel", "LoomProtocol", "LoomTesting", "LoomWire",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "LoomClusterTests", dependencies: ["LoomCluster", "LoomEngine", "LoomProtocol", "LoomTesting", "LoomWire"]),
        .testTarget(
            name: "LoomClusterE2ETests",
            dependencies: ["LoomEngine", "LoomModel", "LoomTesting", "LoomKVStore", "LoomProtocol", "LoomTransfer", "LoomWire"]
        ),
        .testTarget(
            name: "LoomBenchTests",
            dependencies: [
                "LoomBench",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "LoomRealModelTests",
            dependencies: ["LoomEngine", "LoomModel", "LoomTesting"]
        ),
    ]
)
