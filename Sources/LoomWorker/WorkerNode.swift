import Foundation
import LoomEngine
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

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

    public init(name: String, role: WorkerRole, host: String, port: Int, lease: Duration = .seconds(30), fabricProvider: String? = nil) {
        self.name = name
        self.role = role
        self.host = host
        self.port = port
        self.lease = lease
        self.fabricProvider = fabricProvider
    }
}

/// One worker's engine exposed over Loom's RPC: whole requests (`generate`),
/// and both halves of disaggregated serving — a decode worker reserves KV
/// blocks and decodes once they are filled (`reserve`, `attach`), a prefill
/// worker computes prompts and writes their KV into those blocks (`prefill`).
public final class WorkerNode: Sendable {
    public let configuration: WorkerConfiguration
    public let engine: InferenceEngine
    /// For `response_format: json_object`, which the worker applies itself.
    let jsonTokens: JSONTokenTable
    /// The engine's KV pool: registered, so prefill workers write into it.
    let pool: RegisteredRegion
    /// Receives KV into the pool (and staged regions), and sends ours.
    let transfer: TransferNode
    let leases: ReservationLeases
    /// Set when KV blocks travel over `fabric` (`fabricProvider`).
    let staging: FabricStaging?
    let kvBlocksSent = Atomic<UInt64>(0)
    let kvBlocksReceived = Atomic<UInt64>(0)
    let shmWrites = Atomic<UInt64>(0)
    let tcpWrites = Atomic<UInt64>(0)
    let fabricWrites = Atomic<UInt64>(0)
    /// Set on shutdown: in-flight requests finish, new ones are refused.
    let draining = Atomic<Bool>(false)
    /// Cluster calls (generate, reserve, prefill, attach) being served.
    let activeCalls = Atomic<Int>(0)
    private let boundPort: Atomic<Int>

    public init(model: LanguageModel, scheduler: SchedulerConfiguration, configuration: WorkerConfiguration, epoch: UInt64) throws {
        self.configuration = configuration
        boundPort = Atomic(configuration.port)
        let layout = KVCacheLayout(config: model.transformer.config, blockSize: scheduler.blockSize)
        // The pid in the owner's name lets a later start clean up the
        // shared pool files of a worker that was killed.
        let regions = RegionTable(owner: "\(configuration.name).pid\(ProcessInfo.processInfo.processIdentifier)", epoch: epoch)
        StaleSharedPools.remove()
        var rpc = RPCConfiguration(nodeName: configuration.name)
        rpc.epoch = epoch
        let leases = ReservationLeases()
        self.leases = leases
        transfer = try .standard(target: TransferTarget(regions: regions, admission: leases), fabricProvider: configuration.fabricProvider,
                                 host: configuration.host, configuration: rpc)
        // A shared mapping lets prefill workers on this host copy blocks in
        // directly; without /dev/shm the pool is private and reached by tcp.
        // Never fabric: see `FabricStaging`.
        pool = try transfer.register(length: scheduler.blockCount * layout.bytesPerBlock, over: [.shm, .tcp])
        let memory = PagedKVMemory(layout: layout, borrowing: pool.bytes, owner: pool)
        engine = try InferenceEngine(model: model.transformer, configuration: scheduler, memory: memory)
        jsonTokens = JSONTokenTable(tokenizer: model.tokenizer)
        staging = transfer.receiver(.fabric).map(FabricStaging.init(receiver:))
    }

    /// The RPC methods this worker answers, including the `tcp` transfer
    /// target that prefill workers write KV blocks through.
    public var services: RPCServices {
        var services = RPCServices()
        transfer.serve(into: &services)
        services.serverStreaming(ClusterRPC.generate) { spec, _, writer in
            try await self.serving(new: true) { try await self.stream(self.engine.generate(self.request(spec)), to: writer) }
        }
        services.unary(ClusterRPC.reserve) { spec, _ in
            (try await self.serving(new: true) { try await self.reserve(spec) }, ByteBuffer())
        }
        services.unary(ClusterRPC.prefill) { request, _ in
            (try await self.serving(new: true) { try await self.prefill(request) }, ByteBuffer())
        }
        // An attach finishes a request already under way: served while draining.
        services.serverStreaming(ClusterRPC.attach) { request, _, writer in
            try await self.serving(new: false) { try await self.attach(request, writer) }
        }
        services.unary(ClusterRPC.release) { request, _ in
            self.release(RequestID(request.requestID), immediate: UInt32(truncatingIfNeeded: request.requestID))
            return (Loom_Cluster_Empty(), ByteBuffer())
        }
        return services
    }

    public var rpcConfiguration: RPCConfiguration { transfer.configuration }

    /// The port peers reach this worker on, once its server is bound (a
    /// configured port of 0 is only known then).
    public var port: Int { boundPort.load(ordering: .relaxed) }

    public func advertise(port: Int) {
        boundPort.store(port, ordering: .relaxed)
    }

    public var load: Loom_Cluster_Load {
        var load = Loom_Cluster_Load(engine.snapshot, kvBlocksSent: kvBlocksSent.load(ordering: .relaxed),
                                     kvBlocksReceived: kvBlocksReceived.load(ordering: .relaxed))
        load.shmWrites = shmWrites.load(ordering: .relaxed)
        load.tcpWrites = tcpWrites.load(ordering: .relaxed)
        load.fabricWrites = fabricWrites.load(ordering: .relaxed)
        return load
    }

    // MARK: Draining

    /// From now on new requests are refused as `unavailable`, which the
    /// router takes as "try another worker"; those under way finish.
    public func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Nothing is being served and no reservation waits for its KV.
    public var isIdle: Bool { activeCalls.load(ordering: .relaxed) == 0 && leases.count == 0 }

    private func serving<T: Sendable>(new: Bool, _ body: () async throws -> T) async throws -> T {
        activeCalls.add(1, ordering: .relaxed)
        defer { activeCalls.subtract(1, ordering: .relaxed) }
        if new && isDraining {
            throw WireError(SchedulerError(.unavailable, "worker \(configuration.name) is shutting down and takes no new request; send it to another worker"))
        }
        return try await body()
    }

    public func shutdown() {
        staging?.close()
        transfer.close()
        engine.shutdown()
    }

    func request(_ spec: Loom_Cluster_GenerationSpec) -> GenerationRequest {
        var request = spec.request
        if spec.jsonMode { request.constraint = JSONConstraint(jsonTokens) }
        return request
    }

    /// Forwards engine outputs as stream items. Engine refusals become
    /// errors the router can map back to HTTP statuses.
    func stream(_ outputs: AsyncThrowingStream<GenerationOutput, Error>, to writer: RPCStreamWriter) async throws {
        do {
            for try await output in outputs {
                try await writer.send(Loom_Cluster_TokenEvent(output))
            }
        } catch let error as SchedulerError {
            throw WireError(error)
        }
    }
}
