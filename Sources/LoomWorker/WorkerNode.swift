import Foundation
import Logging
import LoomEngine
import LoomKVStore
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore

/// Which worker this process is and how it serves.
public struct WorkerConfiguration: Sendable {
    public var name: String
    public var role: WorkerRole
    /// Where peers reach this worker's RPC (and `tcp` transfer) server.
    public var host: String
    public var port: Int
    /// How long a reservation waits for its prefill before its blocks return.
    public var lease: Duration
    /// A libfabric provider ("tcp;ofi_rxm", "efa", "verbs;ofi_rxm"): KV
    /// blocks then travel as RMA writes through an endpoint bound to
    /// `host`, in both directions. Every worker of a cluster needs the same
    /// one. Nil: `shm` on the same host, `tcp` across hosts.
    public var fabricProvider: String?
    /// KV store nodes to publish every block the engine caches to; none:
    /// blocks live only in this worker's pool.
    public var stores: [StoreNodeAddress]
    /// How many of them hold each block.
    public var storeReplicas: Int

    public init(name: String, role: WorkerRole, host: String, port: Int, lease: Duration = .seconds(30), fabricProvider: String? = nil,
                stores: [StoreNodeAddress] = [], storeReplicas: Int = 1) {
        self.name = name
        self.role = role
        self.host = host
        self.port = port
        self.lease = lease
        self.fabricProvider = fabricProvider
        self.stores = stores
        self.storeReplicas = storeReplicas
    }
}

/// One worker's engine exposed over Loom's RPC: whole requests
/// (`generate`), and both halves of disaggregated serving, each a service
/// of its own — a decode worker reserves KV blocks and decodes once they
/// are filled (`DecodeService`), a prefill worker computes prompts and
/// writes their KV into those blocks (`PrefillService`).
public final class WorkerNode: Sendable {
    public let configuration: WorkerConfiguration
    public let engine: InferenceEngine
    /// For `response_format: json_object`, which the worker applies itself.
    let json: JSONTokenTable
    /// Receives KV into the pool (and staged regions), and sends ours.
    let transfer: TransferNode
    let calls: WorkerCalls
    let decode: DecodeService
    let prefill: PrefillService
    /// Set when the worker publishes to and fetches from store nodes.
    public let publisher: StorePublisher?
    let fetcher: StoreFetcher?
    let lookup: PromptLookup
    private let boundPort: BoundPort

    /// `group`: the heads of this worker's tensor-parallel ranks and their
    /// pools, when it leads a group.
    public init(model: LanguageModel, scheduler: SchedulerConfiguration, configuration: WorkerConfiguration, epoch: UInt64, group: GroupKV? = nil) throws {
        let group = group ?? .single(kvHeads: model.transformer.config.kvHeadCount)
        self.configuration = configuration
        let layout = KVCacheLayout(config: model.transformer.config, blockSize: scheduler.blockSize)
        // The pid in the owner's name lets a later start clean up the
        // shared pool files of a worker that was killed.
        let regions = RegionTable(owner: "\(configuration.name).pid\(ProcessInfo.processInfo.processIdentifier)", epoch: epoch)
        StaleSharedRegions.remove()
        var rpc = RPCConfiguration(nodeName: configuration.name)
        rpc.epoch = epoch
        let leases = LockedWriteLeases<PoolWriter>()
        transfer = try .standard(target: TransferTarget(regions: regions, admission: leases), fabricProvider: configuration.fabricProvider,
                                 host: configuration.host, configuration: rpc)
        // A shared mapping lets prefill workers on this host copy blocks in
        // directly; without /dev/shm the pool is private and reached by tcp.
        // Never fabric: see `FabricStaging`.
        let pool = try transfer.register(length: scheduler.blockCount * layout.bytesPerBlock, over: [.shm, .tcp])
        let immediates = ScratchImmediates()
        let routing = configuration.stores.isEmpty ? nil : StoreRouting(nodes: configuration.stores, replicas: configuration.storeReplicas)
        publisher = routing.map { StorePublisher(
            routing: $0, modelID: scheduler.hasher.modelID, layout: StoredLayout(model.transformer.config, blockSize: scheduler.blockSize)) }
        engine = try InferenceEngine(model: model.transformer, configuration: scheduler,
                                     memory: PagedKVMemory(layout: layout, borrowing: pool.bytes, owner: pool), publishing: publisher)
        json = JSONTokenTable(tokenizer: model.tokenizer)
        calls = WorkerCalls(worker: configuration.name)
        boundPort = BoundPort(configuration.port)
        decode = DecodeService(
            engine: engine, json: json, pool: pool, counters: transfer.target.counters, leases: leases,
            staging: transfer.receiver(.fabric).map(FabricStaging.init(receiver:)), lease: configuration.lease,
            host: configuration.host, port: boundPort, calls: calls, group: group)
        if let routing {
            fetcher = try StoreFetcher(
                routing: routing, engine: engine, hasher: scheduler.hasher,
                staging: transfer.register(length: Self.stagingBlocks * layout.bytesPerBlock, over: [.shm, .tcp]), leases: leases,
                counters: transfer.target.counters, immediates: immediates, peers: transfer.peers, configuration: transfer.configuration,
                host: configuration.host, port: boundPort)
        } else {
            fetcher = nil
        }
        lookup = PromptLookup(engine: engine, fetcher: fetcher, blockSize: scheduler.blockSize)
        let fences = PrefillFences(immediates: immediates, counters: transfer.target.counters, leases: leases, region: pool.descriptor,
                                   host: configuration.host, port: boundPort)
        prefill = PrefillService(engine: engine, json: json, peers: transfer.peers, calls: calls, lookup: lookup,
                                 group: group, geometry: KVGeometry(model.transformer.config, blockSize: scheduler.blockSize), fences: fences)
    }

    /// Blocks one fetch from the store can bring at most.
    static let stagingBlocks = 64

    /// The RPC methods this worker answers: the transfer backends' setup
    /// calls (prefill workers write KV blocks through them), `generate`,
    /// and the decode and prefill services' methods.
    public var services: RPCServices {
        var services = RPCServices()
        transfer.serve(into: &services)
        services.serverStreaming(ClusterRPC.generate) { [engine, json, calls, lookup] spec, _, writer in
            try await calls.serving(new: true) {
                await lookup.prepare(spec.request)
                try await writer.send(engine.generate(spec.request(json: json)))
            }
        }
        services.unary(ClusterRPC.dropCachedBlocks) { [engine] _, _ in
            var response = Loom_Cluster_DropCachedResponse()
            response.dropped = UInt32(await engine.dropCachedBlocks())
            return (response, ByteBuffer())
        }
        decode.serve(into: &services)
        prefill.serve(into: &services)
        return services
    }

    public var rpcConfiguration: RPCConfiguration { transfer.configuration }

    /// The port peers reach this worker on, once its server is bound (a
    /// configured port of 0 is only known then).
    public var port: Int { boundPort.value }

    public func advertise(port: Int) {
        boundPort.set(port)
    }

    public var load: Loom_Cluster_Load {
        let snapshot = engine.snapshot
        var load = calls.load(snapshot)
        if let publisher {
            load.kvBlocksPublished = publisher.published.load(ordering: .relaxed)
            load.kvBlocksPublishDropped = publisher.dropped.load(ordering: .relaxed) + publisher.failed.load(ordering: .relaxed)
        }
        if let fetcher { load.kvBlocksFetched = fetcher.fetched.load(ordering: .relaxed) }
        lookup.report(into: &load)
        load.poolEvictions = UInt64(snapshot.evictedBlocks)
        load.blockBytes = UInt64(engine.kvLayout.bytesPerBlock)
        return load
    }

    /// Publishes the blocks the engine caches, until cancelled (nothing
    /// without store nodes).
    public func publishToStores(logger: Logger) async {
        await publisher?.run(peers: transfer.peers, configuration: transfer.configuration, logger: logger)
    }

    /// Returns the blocks of reservations whose lease ran out, every
    /// `interval`, until cancelled.
    public func sweepLeases(every interval: Duration = .milliseconds(100)) async {
        await decode.sweepLeases(every: interval)
    }

    // MARK: Draining

    /// From now on new requests are refused as `unavailable`, which the
    /// router takes as "try another worker"; those under way finish.
    public func beginDraining() {
        calls.beginDraining()
    }

    public var isDraining: Bool { calls.isDraining }

    /// Nothing is being served and no reservation waits for its KV.
    public var isIdle: Bool { calls.activeCount == 0 && decode.leases.count == 0 }

    public func shutdown() {
        decode.staging?.close()
        transfer.close()
        engine.shutdown()
    }
}
