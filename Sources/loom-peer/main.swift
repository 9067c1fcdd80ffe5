// A small process for multi-host tests and benchmarks: `serve` owns a region
// and serves RPC echo plus the transfer backends; `client` drives one of
// them against a server and prints one result line. Tests start two of these
// in different network namespaces. The work is LoomPeer's; this file only
// turns arguments into its options. `loom bench rpc|transfer` is the same
// benchmark behind a proper command line.
import Foundation
import LoomPeer
import LoomTransfer
import LoomWire
import Logging
import ServiceLifecycle

/// Unbuffered, so the test reading our pipe sees each line at once.
@Sendable func emit(_ line: String) {
    FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
}

func argument(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    guard let index = args.firstIndex(of: "--\(name)"), index + 1 < args.count else { return fallback }
    return args[index + 1]
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
}

func integer(_ name: String, _ fallback: Int) throws -> Int {
    let text = argument(name, "\(fallback)")
    guard let value = Int(text) else { throw UsageError(description: "--\(name) wants a whole number, not \"\(text)\"") }
    return value
}

func serverAddress() throws -> RPCAddress {
    .tcp(host: argument("host", "127.0.0.1"), port: try integer("port", 0))
}

func serverOptions() throws -> PeerServerOptions {
    var options = PeerServerOptions()
    options.host = argument("host", options.host)
    options.port = try integer("port", 0)
    options.regionBytes = try integer("region-bytes", options.regionBytes)
    let epoch = argument("epoch", "\(options.epoch)")
    guard let value = UInt64(epoch) else { throw UsageError(description: "--epoch wants a whole number, not \"\(epoch)\"") }
    options.epoch = value
    options.sharedMemory = CommandLine.arguments.contains("--shm")
    let fabric = argument("fabric", "")
    options.fabricProvider = fabric.isEmpty ? nil : fabric
    return options
}

func rpcBenchOptions() throws -> RPCBenchOptions {
    var options = RPCBenchOptions(server: try serverAddress())
    options.calls = try integer("calls", options.calls)
    return options
}

/// `--descriptor` is the LISTENING line's descriptors joined by a comma:
/// tcp's first, shm's last; fabric's comes from the FABRIC line.
func transferBenchOptions() throws -> TransferBenchOptions {
    let hexes = argument("descriptor", "").split(separator: ",")
    let backend: TransferBenchOptions.Backend
    let hex: Substring?
    switch argument("backend", "tcp") {
    case "fabric":
        backend = .fabric(provider: argument("provider", "tcp;ofi_rxm"), bind: argument("bind", "127.0.0.1"), pings: try integer("pings", 10_000))
        hex = Substring(argument("fabric-descriptor", ""))
    case "shm":
        backend = .shm(socketPath: argument("unix", ""))
        hex = hexes.last
    default:
        backend = .tcp(lanes: try integer("lanes", 4))
        hex = hexes.first
    }
    var options = TransferBenchOptions(backend: backend, server: try serverAddress(), destination: try RegionDescriptor(hex: hex ?? ""))
    options.runs = try integer("runs", options.runs)
    return options
}

func clientOptions() throws -> Client {
    let mode = argument("mode", "rpc")
    return Client(
        mode: Client.Mode(rawValue: mode) ?? .untilError, server: try serverAddress(), backend: argument("backend", "tcp"),
        provider: argument("provider", "tcp;ofi_rxm"), bind: argument("bind", "127.0.0.1"), lanes: try integer("lanes", 2),
        descriptor: argument("descriptor", ""), pages: try integer("pages", 64))
}

// Swift's global executor can only be replaced before any task has run.
if CommandLine.arguments.contains("--nio-executor") {
    _ = runTasksOnNIOEventLoops()
}

do {
    switch CommandLine.arguments.dropFirst().first {
    case "serve":
        let options = try serverOptions()
        // SIGTERM and SIGINT stop it gracefully: it releases what it holds
        // (its /dev/shm regions, its Unix socket) before exiting.
        let server = ClosureService {
            do {
                try await cancelWhenGracefulShutdown { try await PeerServer.run(options, announce: emit) }
            } catch is CancellationError {}
        }
        try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "loom-peer")).run()
    case "client": try await clientOptions().run()
    case "bench-rpc": emit(try await RPCBench.run(try rpcBenchOptions()).json())
    case "bench-transfer": emit(try await TransferBench.run(try transferBenchOptions()).json())
    default:
        FileHandle.standardError.write("usage: loom-peer serve|client [--host H] [--port P] ...\n".data(using: .utf8)!)
        exit(2)
    }
} catch {
    FileHandle.standardError.write("loom-peer: \(error)\n".data(using: .utf8)!)
    exit(1)
}
