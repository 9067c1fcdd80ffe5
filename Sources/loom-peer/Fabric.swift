import Foundation
import LoomTransfer
import LoomWire
import NIOCore

/// `serve --fabric PROVIDER`: a libfabric endpoint beside the RPC server,
/// writing into the same transfer target, with its own region (printed as
/// a `FABRIC <descriptor>` line) and a pong service for the latency bench.
struct FabricServing {
    let fabric: FabricTarget
    let region: RegisteredRegion

    init(provider: String, host: String, target: TransferTarget, regionBytes: Int) throws {
        fabric = try FabricTarget(endpoint: FabricEndpoint(provider: provider, node: host), target: target)
        region = try fabric.register(length: regionBytes)
    }

    /// Attach, plus `pong`: the caller names its own RPC address, a
    /// fabric region of its own and a count; we attach back and answer each
    /// of its writes (immediate `pingBase + i`) with one (immediate `i`).
    func register(into services: inout RPCServices) {
        fabric.register(into: &services)
        services.unary(PeerMethods.pong) { [fabric] request in
            let words = String(buffer: request.message.message).split(separator: " ").map(String.init)
            guard words.count == 4, let port = Int(words[1]), let count = Int(words[3]) else {
                throw WireError(.badMessage, "pong wants \"<host> <port> <descriptor hex> <count>\"")
            }
            let back = try RegionDescriptor(serialized: hexBytes(words[2]))
            let source = RegionTable(owner: "pong", epoch: 1).register(length: 64)
            try await FabricTransport.withTransport(to: .tcp(host: words[0], port: port), endpoint: fabric.endpoint, configuration: configuration("server")) { transport in
                for i in 1...count {
                    let ping = pingBase + UInt32(i)
                    try await fabric.target.counters.wait(for: ping, count: 1, timeout: .seconds(30))
                    fabric.target.counters.reset(ping)
                    try await transport.write(.single(from: source, offset: 0, count: 64, to: back, offset: 0, immediate: UInt32(i)))
                }
            }
            return RPCMessage()
        }
    }
}

let pingBase: UInt32 = 0x4000_0000

func hexBytes(_ hex: String) -> [UInt8] {
    stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// A transport of the backend `--backend` names to the server at `address`.
func withClientTransport<R: Sendable>(
    to address: RPCAddress, ackTimeout: Duration = .seconds(10), _ body: (any TransferTransport) async throws -> R
) async throws -> R {
    switch argument("backend", "tcp") {
    case "fabric":
        let endpoint = try FabricEndpoint(provider: argument("provider", "tcp;ofi_rxm"), node: argument("bind", "127.0.0.1"))
        defer { endpoint.close() }
        return try await FabricTransport.withTransport(to: address, endpoint: endpoint, configuration: configuration("client"), ackTimeout: ackTimeout) { try await body($0) }
    default:
        return try await TCPTransport.withTransport(to: address, lanes: Int(argument("lanes", "2"))!, configuration: configuration("client"), ackTimeout: ackTimeout) { try await body($0) }
    }
}

/// `bench-transfer --backend fabric`, the latency half: 64-byte writes with
/// an immediate, each answered by the server with one of its own (a
/// ping-pong, as fi_pingpong measures messages); half the round trip is
/// the one-way latency.
func benchFabricLatency(server: RPCAddress, endpoint: FabricEndpoint, count: Int) async throws -> (p50: Double, p99: Double) {
    let host = argument("bind", "127.0.0.1")
    let target = TransferTarget(regions: RegionTable(owner: "ping", epoch: 1))
    let fabric = try FabricTarget(endpoint: endpoint, target: target)
    let landing = try fabric.register(length: 64)
    var services = RPCServices()
    fabric.register(into: &services)
    var serverConfiguration = configuration("ping")
    serverConfiguration.transferBackends = [endpoint.offer]
    let pingServer = try await RPCServer.bind(.tcp(host: host, port: 0), services: services, configuration: serverConfiguration)
    let serving = Task { try await pingServer.run() }
    defer { serving.cancel() }
    guard case .tcp(_, let port) = pingServer.localAddress else { fatalError("bound to tcp") }
    let remote = try RegionDescriptor(serialized: hexBytes(argument("fabric-descriptor", "")))
    let source = RegionTable(owner: "ping", epoch: 1).register(length: 64)
    let pong = Task {
        try await RPCConnection.withConnection(to: server, configuration: configuration("ping")) { connection in
            let ask = "\(host) \(port) \(hexString(try landing.descriptor.serialized())) \(count)"
            _ = try await connection.unary(method: PeerMethods.pong, RPCMessage(message: ByteBuffer(string: ask)), timeout: .seconds(600))
        }
    }
    let clock = ContinuousClock()
    var halves: [Double] = []
    try await FabricTransport.withTransport(to: server, endpoint: endpoint, configuration: configuration("ping")) { transport in
        for i in 1...count {
            let start = clock.now
            try await transport.write(.single(from: source, offset: 0, count: 64, to: remote, offset: 0, immediate: pingBase + UInt32(i)))
            try await target.counters.wait(for: UInt32(i), count: 1, timeout: .seconds(30))
            target.counters.reset(UInt32(i))
            halves.append(seconds(clock.now - start) * 1e6 / 2)
        }
    }
    try await pong.value
    let measured = halves.dropFirst(count / 10).sorted()  // the first tenth warms up
    return (measured[measured.count / 2], measured[measured.count * 99 / 100])
}
