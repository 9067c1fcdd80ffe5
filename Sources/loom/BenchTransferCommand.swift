import ArgumentParser
import LoomPeer
import LoomTransfer
import LoomWire

/// The transfer engine's bandwidth between two processes, per backend,
/// next to a memcpy of the same bytes.
struct BenchTransferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Transfer bandwidth: 64 MiB written in 64 KiB pages into a peer server's region, median of runs.",
        discussion: "With --backend fabric, also the one-way latency of a 64-byte write with an immediate.")

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case tcp, shm, fabric
    }

    @OptionGroup var target: PeerBenchOptions

    @Option(name: .long, help: "tcp (striped over TCP lanes), shm (a /dev/shm region; same host only) or fabric (libfabric RMA writes).")
    var backend: Backend = .tcp

    @Option(name: .long, help: ArgumentHelp(
        "libfabric provider for --backend fabric (default tcp;ofi_rxm; `fi_info -l` lists this host's).", valueName: "name"))
    var provider: String?

    @Option(name: .long, help: ArgumentHelp(
        "This host's address for the fabric endpoint (default 127.0.0.1; with --connect to another host, one it can reach).",
        valueName: "address"))
    var bind: String?

    @Option(name: .long, help: "TCP connections to stripe pages over, for --backend tcp (default 4).")
    var lanes: Int?

    @Option(name: .long, help: "Timed runs; one untimed run precedes them and the median is reported.")
    var runs = 5

    @Option(name: .long, help: "Write/answer round trips for the latency, for --backend fabric (default 10000).")
    var pings: Int?

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let lanes {
            guard backend == .tcp else { throw ValidationError("--lanes applies to --backend tcp only") }
            guard lanes >= 1 else { throw ValidationError("--lanes must be at least 1") }
        }
        guard backend == .fabric || (provider == nil && bind == nil && pings == nil) else {
            throw ValidationError("--provider, --bind and --pings apply to --backend fabric only")
        }
        if let pings, pings < 1 { throw ValidationError("--pings must be at least 1") }
    }

    func run() async throws {
        let provider = provider ?? "tcp;ofi_rxm", bind = bind ?? "127.0.0.1"
        // Before starting a server with it: a provider this host lacks is
        // the likeliest mistake, and the server's copy of the error is
        // further from the person who made it.
        if backend == .fabric { try checkProvider(provider, bind: bind) }
        let serverArguments = ["--region-bytes", "\(TransferBench.totalBytes)"]
            + (backend == .shm ? ["--shm"] : []) + (backend == .fabric ? ["--fabric", provider] : [])
        let result = try await target.withServer(serverArguments) { server in
            let description = try await PeerDescription.fetch(from: server)
            let options = try options(server: server, description: description, provider: provider, bind: bind)
            return try await TransferBench.run(options, progress: { stderr("loom bench \($0)") })
        }
        target.print(result.table(), json: result.json())
    }

    private func options(server: RPCAddress, description: PeerDescription, provider: String, bind: String) throws -> TransferBenchOptions {
        var options: TransferBenchOptions
        switch backend {
        case .tcp:
            options = TransferBenchOptions(backend: .tcp(lanes: lanes ?? 4), server: server, destination: description.region)
        case .shm:
            guard let shared = description.shared else {
                throw BenchError("the peer server at \(server) has no shared-memory region; start it with --shm (on this host: shm works between processes of one machine)")
            }
            options = TransferBenchOptions(backend: .shm(socketPath: shared.socketPath), server: server, destination: shared.region)
        case .fabric:
            guard let region = description.fabricRegion else {
                throw BenchError("the peer server at \(server) has no fabric endpoint; start it with --fabric \"\(provider)\"")
            }
            options = TransferBenchOptions(backend: .fabric(provider: provider, bind: bind, pings: pings ?? 10_000), server: server, destination: region)
        }
        options.runs = runs
        return options
    }

    private func checkProvider(_ provider: String, bind: String) throws {
        do {
            try FabricEndpoint(provider: provider, node: bind).close()
        } catch {
            throw BenchError("cannot open a libfabric endpoint of provider \"\(provider)\" on \(bind): \(error.message)\n`fi_info -l` lists the providers this host has; tcp;ofi_rxm works wherever libfabric does, and --bind must be an address of this host.")
        }
    }
}
