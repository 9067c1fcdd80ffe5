import ArgumentParser
import Foundation
import Logging
import LoomEngine
import LoomHTTP
import LoomModel
import LoomPeer
import LoomRouter
import LoomWire
import LoomWorker

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run one worker of a Loom cluster: the engine, served over Loom's RPC to a router.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "prefill, decode or mixed.")
    var role: String = "mixed"

    @Option(name: .long, help: "This worker's name in the cluster (unique).")
    var name: String

    @Option(name: .long, help: "Address peers reach this worker on (RPC and KV transfer).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "RPC port (0 picks a free one).")
    var port = 0

    @Option(name: .long, help: "The router's RPC address, host:port.")
    var router: String

    @Option(name: .long, help: "Sequences that may run in one batch.")
    var maxRunning = 16

    @Option(name: .long, help: "KV-cache blocks of 16 tokens in the pool.")
    var kvBlocks = 1024

    @Option(name: .long, help: "Seconds a KV reservation waits for its prefill before its blocks return.")
    var leaseSeconds = 30

    @Option(name: .long, help: ArgumentHelp(
        "Move KV blocks as libfabric RMA writes through this provider (tcp;ofi_rxm, verbs;ofi_rxm, efa); every worker needs the same.",
        discussion: "Without it: shm between workers on one host, tcp across hosts. `fi_info -l` lists this host's providers."))
    var fabricProvider: String?

    func validate() throws {
        guard ["prefill", "decode", "mixed"].contains(role) else { throw ValidationError("--role must be prefill, decode or mixed") }
        guard RPCAddress(hostPort: router) != nil else { throw ValidationError("--router must be host:port, got '\(router)'") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard (1...64).contains(maxRunning) else { throw ValidationError("--max-running must be between 1 and 64") }
        guard kvBlocks >= 1, leaseSeconds >= 1 else { throw ValidationError("--kv-blocks and --lease-seconds must be at least 1") }
        guard fabricProvider != "shm" else {
            throw ValidationError("--fabric-provider shm is not supported: libfabric's shm provider wedges a writer and its target after one refused write; leave it out, and workers on one host use Loom's own shared-memory backend")
        }
    }

    func run() async throws {
        var logger = Logger(label: "loom.worker.\(name)")
        logger.logLevel = .info
        let path = try options.modelPath()
        let tokenBudget = 256
        let model = try LanguageModel(path: path, threads: options.threads, maxBatchTokens: tokenBudget)
        let modelName = ServedModel.defaultName(path: path)
        let scheduler = SchedulerConfiguration(
            blockCount: kvBlocks, tokenBudget: tokenBudget, maxRunning: maxRunning,
            contextLength: model.transformer.config.contextLength, hasher: BlockHasher(modelName: modelName))
        // The epoch changes with every start, so descriptors handed out by
        // an earlier incarnation of this worker are refused.
        let epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000) ^ UInt64(ProcessInfo.processInfo.processIdentifier)
        let configuration = WorkerConfiguration(name: name, role: role, host: host, port: port, lease: .seconds(leaseSeconds), fabricProvider: fabricProvider)
        var rpc = RPCConfiguration(nodeName: name, logger: logger)
        rpc.epoch = epoch
        let worker = try WorkerNode(model: model, scheduler: scheduler, configuration: configuration, epoch: epoch)
        // The HELLO offers the worker's fabric endpoint, if it has one.
        rpc.transferBackends = worker.rpcConfiguration.transferBackends
        try await serve(worker, rpc: rpc, modelName: modelName, logger: logger)
    }

    private func serve(_ worker: WorkerNode, rpc: RPCConfiguration, modelName: String, logger: Logger) async throws {
        let server = try await RPCServer.bind(.tcp(host: host, port: port), services: worker.services, configuration: rpc)
        guard case .tcp(_, let boundPort) = server.localAddress else { return }
        worker.advertise(port: boundPort)
        let link = RouterLink(router: RPCAddress(hostPort: router)!, worker: worker, blockSize: KVCacheLayout.defaultBlockSize, modelName: modelName, logger: logger)
        announce("loom worker: \(name) role=\(role) listening on \(host):\(boundPort) router=\(router)")
        try await runUntilSignalled {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.run() }
                group.addTask { await link.run() }
            }
        }
        worker.shutdown()
    }
}
