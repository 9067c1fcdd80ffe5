// swift-tools-version: 6.0
import PackageDescription

// The floor under issue 4's RPC latency goal: what swift-nio alone costs for
// a 32-byte ping-pong on loopback, with no RPC framing, routing or codec on
// top. LoomWire runs on swift-nio, so its round trip cannot beat this one;
// the gap between the two is what LoomWire itself adds. A package of its
// own, like grpc-compare, so the main build never compiles it.
let package = Package(
    name: "nio-floor",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
