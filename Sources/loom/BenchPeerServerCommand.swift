import ArgumentParser
import Foundation
import Logging
import LoomPeer
import ServiceLifecycle

/// The other side of `bench rpc` and `bench transfer`. They start it
/// themselves; run it by hand to measure between two hosts (`--connect`).
/// Prints the same `FABRIC` and `LISTENING` lines as `loom-peer serve`.
struct BenchPeerServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-server",
        abstract: "Serve RPC echo and the transfer backends for `loom bench rpc|transfer --connect`.",
        shouldDisplay: false)

    @Option(name: .long, help: "Address to listen on, and the fabric endpoint's.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0 picks a free one; the LISTENING line says which).")
    var port = 0

    @Option(name: .long, help: "Bytes in each region; transfer benches need 64 MiB.")
    var regionBytes = TransferBench.totalBytes

    @Flag(name: .long, help: "Also serve a /dev/shm region on a unix socket, for --backend shm.")
    var shm = false

    @Option(name: .long, help: "Also serve a region over a libfabric endpoint of this provider, e.g. \"tcp;ofi_rxm\".")
    var fabric: String?

    @Flag(name: .long, help: "Run Swift tasks on NIO's event loop threads.")
    var nioExecutor = false

    @Option(name: .long, help: .hidden)
    var parent: Int32?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard regionBytes >= 1 else { throw ValidationError("--region-bytes must be at least 1") }
    }

    func run() async throws {
        let options = serverOptions, parent = parent
        let server = ClosureService {
            try await stoppedGracefully {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await PeerServer.run(options, announce: announce) }
                    if let parent { group.addTask { try await waitUntilOrphaned(from: parent) } }
                    // Either the server failed or our parent is gone: stop both.
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
        try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "loom.peer-server")).run()
    }

    private var serverOptions: PeerServerOptions {
        var options = PeerServerOptions()
        options.host = host
        options.port = port
        options.regionBytes = regionBytes
        options.sharedMemory = shm
        options.fabricProvider = fabric
        return options
    }
}

/// Returns once `parent` is no longer this process's parent: the bench
/// that started us died without stopping us, and nobody else will.
private func waitUntilOrphaned(from parent: Int32) async throws {
    while getppid() == parent {
        try await Task.sleep(for: .milliseconds(200))
    }
}
