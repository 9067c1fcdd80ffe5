import Foundation
import LoomTransfer
import LoomWire
import NIOCore

/// What a peer server offers: one region written over `tcp`, and on request
/// a second in /dev/shm behind a unix socket and a third behind a libfabric
/// endpoint.
public struct PeerServerOptions: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port; the `LISTENING` line says which.
    public var port = 0
    /// Each region's size; the transfer bench needs 64 MiB.
    public var regionBytes = 64 << 20
    /// Distinguishes this incarnation's descriptors from a previous one's.
    public var epoch = UInt64(Date().timeIntervalSince1970 * 1e6)
    /// Also serve a shared-memory region on `socketPath`, for the `shm` backend.
    public var sharedMemory = false
    public var socketPath = "/tmp/loom-peer-\(getpid()).sock"
    /// A libfabric provider ("tcp;ofi_rxm", "efa", ...) to serve a region over.
    public var fabricProvider: String?

    public init() {}
}

/// The server side of the RPC and transfer benchmarks and of the multi-host
/// tests: RPC echo, sink and inspect, plus the transfer backends.
public enum PeerServer {
    /// Binds, hands `announce` a `FABRIC <descriptor>` line (with a fabric
    /// provider) and then the `LISTENING <address> <descriptors> [unix
    /// address]` line scripts wait for, and serves until cancelled. Every
    /// region is released on the way out, so no /dev/shm file outlives it.
    public static func run(_ options: PeerServerOptions, announce: @Sendable (String) -> Void) async throws {
        let target = TransferTarget(regions: RegionTable(owner: "server", epoch: options.epoch))
        let fabricReceiver = try options.fabricProvider.map {
            try FabricTarget(endpoint: FabricEndpoint(provider: $0, node: options.host), target: target)
        }
        let receivers: [any TransferReceiver] = [TCPReceiver(target: target), SharedMemoryReceiver(target: target)] + (fabricReceiver.map { [$0] } ?? [])
        let transfer = TransferNode(target: target, receivers: receivers, configuration: .peer("server"))
        defer { transfer.close() }
        let region = try transfer.register(length: options.regionBytes, over: [.tcp])
        let fabric = try fabricReceiver.map { try FabricServing(fabric: $0, regionBytes: region.count) }
        let shared = options.sharedMemory ? try transfer.register(length: region.count, over: [.shm]) : nil
        defer { if let shared { target.regions.deregister(shared) } }
        let description = PeerDescription(
            region: region.descriptor, shared: shared.map { ($0.descriptor, options.socketPath) },
            fabricRegion: fabric?.region.descriptor)
        let services = try services(transfer: transfer, region: region, fabric: fabric, description: description)

        let configuration = transfer.configuration
        if let fabric { announce("FABRIC \(try fabric.region.descriptor.hex())") }
        let server = try await RPCServer.bind(.tcp(host: options.host, port: options.port), services: services, configuration: configuration)
        let sharedServer = shared == nil ? nil
            : try await RPCServer.bind(.unix(path: options.socketPath), services: services, configuration: .peer("server"))
        var line = "LISTENING \(server.localAddress) \(try region.descriptor.hex())"
        if let shared, let sharedServer { line += " \(try shared.descriptor.hex()) \(sharedServer.localAddress)" }
        announce(line)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            if let sharedServer { group.addTask { try await sharedServer.run() } }
            try await group.waitForAll()
        }
    }

    private static func services(
        transfer: TransferNode, region: RegisteredRegion, fabric: FabricServing?, description: PeerDescription
    ) throws -> RPCServices {
        var services = RPCServices()
        services.immediate(PeerMethods.echo) { $0.message }
        services.immediate(PeerMethods.sink) { _ in RPCMessage() }
        services.unary(PeerMethods.inspect) { request in
            var inspected = region
            if String(buffer: request.message.message) == "fabric" {
                guard let fabric else { throw WireError(.badMessage, "this server has no fabric region; start it with --fabric PROVIDER") }
                inspected = fabric.region
            }
            let sum = try inspected.read(offset: 0, count: inspected.count).reduce(UInt64(0)) { $0 &+ UInt64($1) }
            return RPCMessage(message: ByteBuffer(string: "\(transfer.target.counters.count(1)) \(sum)"))
        }
        let described = ByteBuffer(string: try description.encoded())
        services.immediate(PeerMethods.describe) { _ in RPCMessage(message: described) }
        transfer.serve(into: &services)
        fabric?.servePong(into: &services)
        return services
    }
}
