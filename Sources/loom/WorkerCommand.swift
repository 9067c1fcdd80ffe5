import ArgumentParser
import Foundation
import Logging
import LoomCluster
import LoomEngine
import LoomHTTP
import LoomModel
import LoomPeer
import LoomProtocol
import LoomTensorParallel
import LoomWire
import LoomWorker
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run one worker of a Loom cluster: the engine, served over Loom's RPC to a router.")

    @OptionGroup var member: MemberOptions

    @OptionGroup(title: "Tensor parallel") var tensorParallel: TensorParallelOptions

    @Option(name: .long, help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "prefill, decode or mixed (the default).")
    var role: WorkerRole?

    @Option(name: .long, help: ArgumentHelp(
        "A KV store node to publish every cached block to (repeat for several; blocks are spread over them by rendezvous hashing).",
        valueName: "host:port"))
    var kvstore: [RPCAddress] = []

    @Option(name: .long, help: "How many of the --kvstore nodes hold each block (default: 1); a read goes to a live one.")
    var kvstoreReplicas: Int?

    @Option(name: .long, help: "Sequences that may run in one batch (default: 16).")
    var maxRunning: Int?

    @Option(name: .long, help: "KV-cache blocks of 16 tokens in the pool (default: 1024).")
    var kvBlocks: Int?

    @Option(name: .long, help: "Seconds a KV reservation waits for its prefill before its blocks return.")
    var leaseSeconds = 30

    @Option(name: .long, help: "On SIGTERM, seconds to finish the requests under way before stopping anyway.")
    var drainSeconds = 30

    @Option(name: .long, help: ArgumentHelp(
        "Move KV blocks as libfabric RMA writes through this provider (tcp;ofi_rxm, verbs;ofi_rxm, efa); every worker needs the same.",
        discussion: "Without it: shm between workers on one host, tcp across hosts. `fi_info -l` lists this host's providers."))
    var fabricProvider: String?

    func validate() throws {
        let group = try groupSpec()
        if let group, group.rank > 0 {
            // A follower rank serves no one: it needs the model and its group.
            guard threads.map({ $0 >= 1 }) ?? true else { throw ValidationError("--threads must be at least 1") }
            return
        }
        let settings = try settings()
        if group != nil {
            guard settings.stores.nodes.isEmpty, settings.worker.fabricProvider == nil else {
                throw ValidationError("a tensor-parallel worker (--tp-size above 1) runs without --kvstore and --fabric-provider in this build: its KV lives in every rank, and moving it to a store or through fabric staging is not built yet")
            }
        }
        try Limits.checkForCommandLine(leaseSeconds, in: Limits.leaseSeconds, "--lease-seconds")
        try Limits.checkForCommandLine(drainSeconds, in: Limits.drainSeconds, "--drain-seconds")
    }

    /// This worker's entry, where its router is and which model it serves:
    /// from `--config` (validated by its loader), else from the flags,
    /// checked against the same `Limits`.
    func settings() throws -> (worker: WorkerConfig, router: RPCAddress, model: String?, stores: (nodes: [StoreNodeAddress], replicas: Int)) {
        let extra: [(flag: String, value: Any?)] = [
            ("--threads", threads), ("--role", role), ("--max-running", maxRunning), ("--kv-blocks", kvBlocks), ("--fabric-provider", fabricProvider),
            ("--kvstore", kvstore.isEmpty ? nil : kvstore), ("--kvstore-replicas", kvstoreReplicas),
        ]
        if let cluster = try member.cluster(refusing: extra) {
            let worker = try entry(in: cluster)
            let stores = cluster.kvstores.map { StoreNodeAddress(name: $0.name, address: .tcp(host: $0.host, port: $0.port)) }
            return (worker, cluster.router.rpcAddress, cluster.model, (stores, cluster.kvstore.replicas))
        }
        let router = try member.requiredRouter()
        if let kvstoreReplicas {
            try Limits.checkForCommandLine(kvstoreReplicas, in: 1...max(1, kvstore.count), "--kvstore-replicas (at most one per --kvstore node)")
        }
        var worker = WorkerConfig(name: member.name, role: role ?? .mixed, port: member.port ?? 0)
        if let host = member.host { worker.host = host }
        worker.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        if let maxRunning { worker.maxRunning = maxRunning }
        if let kvBlocks { worker.kvBlocks = kvBlocks }
        if let fabricProvider {
            guard let provider = FabricProvider(rawValue: fabricProvider) else {
                throw ValidationError("--fabric-provider \(FabricProvider.refusal(of: fabricProvider))")
            }
            worker.fabricProvider = provider
        }
        do {
            try worker.validate(allowingAnyPort: true)
        } catch {
            throw ValidationError(error.description)
        }
        // Without names, a node's address is its id: every worker given the
        // same --kvstore list places blocks the same way.
        return (worker, router, member.model, (kvstore.map { StoreNodeAddress(name: $0.hostPort, address: $0) }, kvstoreReplicas ?? 1))
    }

    func run() async throws {
        var logger = Logger(label: "loom.worker.\(member.name)")
        logger.logLevel = .info
        let group = try groupSpec()
        if let group, group.rank > 0 { return try await runFollower(group) }
        let (settings, routerAddress, configuredModel, stores) = try settings()
        let path: String
        do { path = try ModelLocator.resolve(configuredModel) } catch let error as GGUFError { throw ValidationError(error.message) }
        let tokenBudget = Limits.stepTokenBudget
        let file = try GGUFFile(path: path)
        let split = try group.map { try TensorSplit(file: file, size: $0.size) }
        // The leader listens before it loads, so ranks started with it keep
        // their join timeout for their own loading, not for its.
        var leader: GroupLeader?
        if var group, let split {
            group.threads = settings.threads
            let geometry = GroupGeometry(kvBlocks: settings.kvBlocks, blockSize: KVCacheLayout.defaultBlockSize, maxBatchTokens: tokenBudget, maxLogitRows: LanguageModel.maxLogitRows)
            leader = try await GroupLeader.listen(group, file: file, split: split, geometry: geometry)
            announce("loom worker: \(settings.name) leads a tensor-parallel group of \(group.size); ranks join at \(leader!.address.hostPort)")
        }
        let model = try LanguageModel(file: file, threads: settings.threads, maxBatchTokens: tokenBudget, shard: split?.shards[0])
        var formed: TensorParallelGroup?
        var groupKV: GroupKV?
        var watchdog: GroupWatchdog?
        // The followers' loops end with the leader's.
        defer {
            watchdog?.stop()
            formed?.collective.value.stop()
        }
        if let group, let leader {
            let joined = try await leader.form()
            model.transformer.collective = joined.collective.value
            formed = joined
            watchdog = GroupWatchdog.start(joined.health) { dead, reason in
                FileHandle.standardError.write(Data("loom worker: \(settings.name): rank \(dead.rank) (pid \(dead.pid) on \(dead.host)) \(reason); the group cannot compute without it, so this worker stops (restart the group whole)\n".utf8))
                Foundation.exit(1)
            }
            announce("loom worker: \(settings.name): \(group.size) ranks joined (\(joined.routes))")
            let pools = await leader.kvPools()
            guard pools.map(\.rank) == (1..<UInt32(group.size)).map({ $0 }) else {
                throw ValidationError("ranks \(pools.map(\.rank)) of \(group.size) reported their KV pools; every rank reports its pool before it is ready, so a rank of another Loom version joined")
            }
            groupKV = GroupKV(heads: split!.shards.map(\.kvHeads), rank: 0,
                              pools: pools.map { $0.rankPool(split!, config: model.transformer.config, blockSize: joined.geometry.blockSize) })
        }
        let modelName = ServedModel.defaultName(path: path)
        let scheduler = SchedulerConfiguration(
            blockCount: settings.kvBlocks, tokenBudget: tokenBudget, maxRunning: settings.maxRunning,
            contextLength: model.transformer.config.contextLength, hasher: BlockHasher(modelName: modelName))
        let epoch = processEpoch()
        let configuration = WorkerConfiguration(
            name: settings.name, role: settings.role, host: settings.host, port: settings.port,
            lease: .seconds(leaseSeconds), fabricProvider: settings.fabricProvider?.rawValue, stores: stores.nodes,
            storeReplicas: stores.replicas)
        var rpc = RPCConfiguration(nodeName: settings.name, logger: logger)
        rpc.epoch = epoch
        let worker = try WorkerNode(model: model, scheduler: scheduler, configuration: configuration, epoch: epoch, group: groupKV)
        // The HELLO offers the worker's fabric endpoint, if it has one.
        rpc.offers = worker.rpcConfiguration.offers
        let ranks = (formed?.members ?? []).map { member in
            var rank = Loom_Cluster_GroupRank()
            rank.rank = UInt32(member.rank)
            rank.pid = member.pid
            rank.host = member.host
            if member.rank > 0 {
                rank.address = "\(member.dataHost):\(member.dataPort)"
                rank.link = formed!.overTCP.contains(member.rank) ? "tcp" : "shm"
            }
            return rank
        }
        try await serve(worker, rpc: rpc, router: routerAddress, modelName: modelName, ranks: ranks, logger: logger)
    }

    private func serve(_ worker: WorkerNode, rpc: RPCConfiguration, router: RPCAddress, modelName: String, ranks: [Loom_Cluster_GroupRank], logger: Logger) async throws {
        let c = worker.configuration
        let server = try await RPCServer.bind(.tcp(host: c.host, port: c.port), services: worker.services, configuration: rpc)
        guard case .tcp(_, let boundPort) = server.localAddress else { return }
        worker.advertise(port: boundPort)
        let link = RouterLink(
            router: router, member: WorkerMembership(worker: worker, blockSize: KVCacheLayout.defaultBlockSize, modelName: modelName, ranks: ranks), logger: logger)
        announce("loom worker: \(c.name) role=\(c.role.rawValue) listening on \(c.host):\(boundPort) router=\(router.hostPort)")
        let service = WorkerService(node: worker, server: server, link: link, drainTimeout: .seconds(drainSeconds), logger: logger)
        // SIGTERM and SIGINT drain; the group's logger says when.
        try await ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
    }
}
