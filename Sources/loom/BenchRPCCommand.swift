import ArgumentParser
import LoomPeer

/// LoomWire's round trip and attachment bandwidth between two processes,
/// the figures issue 4 sets goals for.
struct BenchRPCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc",
        abstract: "RPC round-trip latency (p50, p99) with 32-byte messages and throughput with 1 MiB attachments.",
        discussion: "One connection, one call at a time, to a peer server in a second process.")

    @OptionGroup var target: PeerBenchOptions

    @Option(name: .long, help: "Timed 32-byte round trips.")
    var calls = 5000

    @Option(name: .long, help: "Untimed round trips before them.")
    var warmupCalls = 500

    @Option(name: .long, help: "Timed calls with a 1 MiB attachment (a tenth as many run untimed first).")
    var attachmentCalls = 200

    func validate() throws {
        guard calls >= 1 else { throw ValidationError("--calls must be at least 1") }
        guard warmupCalls >= 0 else { throw ValidationError("--warmup-calls must be 0 or more") }
        guard attachmentCalls >= 1 else { throw ValidationError("--attachment-calls must be at least 1") }
    }

    func run() async throws {
        // The RPC bench writes into no region: a small one starts faster.
        let result = try await target.withServer(["--region-bytes", "\(1 << 20)"]) { server in
            var options = RPCBenchOptions(server: server)
            options.calls = calls
            options.warmupCalls = warmupCalls
            options.attachmentCalls = attachmentCalls
            return try await RPCBench.run(options, progress: { stderr("loom bench \($0)") })
        }
        target.print(result.table(), json: result.json())
    }
}
