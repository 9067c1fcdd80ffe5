// A small process for multi-host tests and benchmarks: `serve` owns a region
// and serves RPC echo plus the transfer backends; `client` drives one of
// them against a server and prints one result line. Tests start two of these
// in different network namespaces.
import Foundation
import LoomTransfer
import LoomWire
import NIOCore
import NIOPosix

enum PeerMethods {
    static let echo: UInt32 = 1
    /// Returns "<count of immediate 1> <sum of region bytes>" as text.
    static let inspect: UInt32 = 2
    /// Answers with nothing: for throughput of request attachments.
    static let sink: UInt32 = 3
    /// Answers a client's fabric pings with writes of its own (`FabricServing`).
    static let pong: UInt32 = 5
}

/// Unbuffered, so the test reading our pipe sees each line at once.
func emit(_ line: String) {
    FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}

func argument(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    guard let index = args.firstIndex(of: "--\(name)"), index + 1 < args.count else { return fallback }
    return args[index + 1]
}

func configuration(_ name: String) -> RPCConfiguration {
    var configuration = RPCConfiguration(nodeName: name)
    configuration.keepaliveInterval = .milliseconds(500)
    configuration.keepaliveMissLimit = 4
    return configuration
}

func serve() async throws {
    let target = TransferTarget(regions: RegionTable(owner: "server", epoch: UInt64(argument("epoch", "\(UInt64(Date().timeIntervalSince1970 * 1e6))"))!))
    let region = target.regions.register(length: Int(argument("region-bytes", "\(64 << 20)"))!)
    var services = RPCServices()
    services.unary(PeerMethods.echo) { $0.message }
    let fabric = try argument("fabric", "").isEmpty ? nil
        : FabricServing(provider: argument("fabric", ""), host: argument("host", "127.0.0.1"), target: target, regionBytes: region.count)
    services.unary(PeerMethods.inspect) { request in
        // "fabric" names the fabric region; anything else the first one.
        let inspected = String(buffer: request.message.message) == "fabric" ? fabric!.region : region
        let sum = try inspected.read(offset: 0, count: inspected.count).reduce(UInt64(0)) { $0 &+ UInt64($1) }
        return RPCMessage(message: ByteBuffer(string: "\(target.counters.count(1)) \(sum)"))
    }
    fabric?.register(into: &services)
    services.unary(PeerMethods.sink) { _ in RPCMessage() }
    TransferService.register(into: &services, target: target)
    TransferService.registerShared(into: &services, target: target)
    var serverConfiguration = configuration("server")
    if let fabric {
        serverConfiguration.transferBackends = [fabric.fabric.offer]
        emit("FABRIC \(hexString(try fabric.region.descriptor.serialized()))")
    }
    let server = try await RPCServer.bind(.tcp(host: argument("host", "127.0.0.1"), port: Int(argument("port", "0"))!),
                                          services: services, configuration: serverConfiguration)
    var descriptor = hexString(try region.descriptor.serialized())
    var extra = ""
    let shmServer: RPCServer?
    if CommandLine.arguments.contains("--shm") {
        let shared = try SharedMemoryRegion.register(in: target.regions, length: region.count)
        descriptor += " " + hexString(try shared.descriptor.serialized())
        shmServer = try await RPCServer.bind(.unix(path: "/tmp/loom-peer-\(getpid()).sock"), services: services, configuration: configuration("server"))
        extra = " \(shmServer!.localAddress)"
    } else {
        shmServer = nil
    }
    emit("LISTENING \(server.localAddress) \(descriptor)\(extra)")
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        if let shmServer { group.addTask { try await shmServer.run() } }
        try await group.waitForAll()
    }
}

/// The server's region (from its LISTENING line) and a source to copy from.
func transferSetup() throws -> (remote: RegionDescriptor, source: RegisteredRegion, pages: Int, pageBytes: Int) {
    let remote = try RegionDescriptor(serialized: hexBytes(argument("descriptor", "")))
    let pages = Int(argument("pages", "64"))!
    let pageBytes = remote.length / pages
    let source = RegionTable(owner: "client", epoch: 1).register(length: remote.length)
    try source.fill(offset: 0, with: (0..<remote.length).map { UInt8(truncatingIfNeeded: $0 &* 13) })
    return (remote, source, pages, pageBytes)
}

func client() async throws {
    let address = RPCAddress.tcp(host: argument("host", "127.0.0.1"), port: Int(argument("port", "0"))!)
    switch argument("mode", "rpc") {
    case "rpc":
        try await RPCConnection.withConnection(to: address, configuration: configuration("client")) { connection in
            for i in 0..<100 {
                let reply = try await connection.unary(method: PeerMethods.echo, RPCMessage(message: ByteBuffer(string: "ping \(i)")), timeout: .seconds(10))
                guard reply.message == ByteBuffer(string: "ping \(i)") else { throw TransferError(.invalidRequest, "echo mismatch") }
            }
        }
        emit("OK rpc 100")
    case "transfer":
        let (remote, source, pages, pageBytes) = try transferSetup()
        try await withClientTransport(to: address) { transport in
            try await transport.write(.paged(from: source, pages: Array(0..<pages), stride: pageBytes, to: remote, pages: Array(0..<pages), stride: pageBytes, pageLength: pageBytes, immediate: 1))
        }
        let expected = try source.read(offset: 0, count: remote.length).reduce(UInt64(0)) { $0 &+ UInt64($1) }
        let seen = try await RPCConnection.withConnection(to: address, configuration: configuration("client")) { connection in
            try await connection.unary(method: PeerMethods.inspect, RPCMessage(message: ByteBuffer(string: argument("backend", "tcp"))), timeout: .seconds(10))
        }
        emit("OK transfer \(String(buffer: seen.message)) expected 1 \(expected)")
    default:  // "until-error": keep writing until the server dies
        let (remote, source, _, pageBytes) = try transferSetup()
        do {
            try await withClientTransport(to: address, ackTimeout: .seconds(5)) { transport in
                emit("STARTED")
                for _ in 0..<100_000 {
                    try await transport.write(.single(from: source, offset: 0, count: pageBytes, to: remote, offset: 0, immediate: 2))
                }
            }
            emit("NO ERROR")
        } catch {
            emit("ERROR \(error)")
        }
    }
}

// Runs Swift tasks on NIO's event loop threads, so a call's frames and its
// handler do not hop between two thread pools on every round trip.
if CommandLine.arguments.contains("--nio-executor") {
    _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
}

do {
    switch CommandLine.arguments.dropFirst().first {
    case "serve": try await serve()
    case "client": try await client()
    case "bench-rpc": try await benchRPC()
    case "bench-transfer": try await benchTransfer()
    default:
        FileHandle.standardError.write("usage: loom-peer serve|client [--host H] [--port P] ...\n".data(using: .utf8)!)
        exit(2)
    }
} catch {
    FileHandle.standardError.write("loom-peer: \(error)\n".data(using: .utf8)!)
    exit(1)
}
