import Foundation
import LoomEngine
import LoomHTTP
import LoomModel
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

/// Which worker this process is and how it serves.
public struct WorkerConfiguration: Sendable {
    public var name: String
    public var role: String
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

    public init(name: String, role: String, host: String, port: Int, lease: Duration = .seconds(30), fabricProvider: String? = nil) {
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
    let served: ServedModel
    let regions: RegionTable
    /// The engine's KV pool: registered, so prefill workers write into it.
    let pool: RegisteredRegion
    let target: TransferTarget
    let leases = ReservationLeases()
    /// Set when KV blocks travel over `fabric` (`fabricProvider`).
    let staging: FabricStaging?
    let peers: PeerTransports
    let rpc: RPCConfiguration
    let kvBlocksSent = Atomic<UInt64>(0)
    let kvBlocksReceived = Atomic<UInt64>(0)
    let shmWrites = Atomic<UInt64>(0)
    let tcpWrites = Atomic<UInt64>(0)
    let fabricWrites = Atomic<UInt64>(0)
    private let boundPort: Atomic<Int>

    public init(model: LanguageModel, scheduler: SchedulerConfiguration, configuration: WorkerConfiguration, epoch: UInt64) throws {
        self.configuration = configuration
        boundPort = Atomic(configuration.port)
        let layout = KVCacheLayout(config: model.transformer.config, blockSize: scheduler.blockSize)
        // The pid in the owner's name lets a later start clean up the
        // shared pool files of a worker that was killed.
        regions = RegionTable(owner: "\(configuration.name).pid\(ProcessInfo.processInfo.processIdentifier)", epoch: epoch)
        StaleSharedPools.remove()
        let bytes = scheduler.blockCount * layout.bytesPerBlock
        // A shared mapping lets prefill workers on this host copy blocks in
        // directly; without /dev/shm the pool is private and reached by tcp.
        pool = (try? SharedMemoryRegion.register(in: regions, length: bytes)) ?? regions.register(length: bytes)
        let memory = PagedKVMemory(layout: layout, borrowing: pool.bytes, owner: pool)
        engine = try InferenceEngine(model: model.transformer, configuration: scheduler, memory: memory)
        served = ServedModel(model: model, engine: engine, name: ServedModel.defaultName(path: model.path))
        target = TransferTarget(regions: regions, admission: leases)
        var rpc = RPCConfiguration(nodeName: configuration.name)
        rpc.epoch = epoch
        let staging = try configuration.fabricProvider.map { [regions, target] provider in
            try FabricStaging(provider: provider, host: configuration.host, target: TransferTarget(regions: regions, counters: target.counters))
        }
        if let staging { rpc.transferBackends.append(staging.fabric.offer) }
        self.staging = staging
        self.rpc = rpc
        peers = PeerTransports(configuration: rpc, fabric: staging?.fabric.endpoint)
    }

    /// The RPC methods this worker answers, including the `tcp` transfer
    /// target that prefill workers write KV blocks through.
    public var services: RPCServices {
        var services = RPCServices()
        TransferService.register(into: &services, target: target)
        TransferService.registerShared(into: &services, target: target)
        staging?.fabric.register(into: &services)
        services.serverStreaming(ClusterRPC.generate) { spec, _, writer in
            try await self.stream(self.engine.generate(self.request(spec)), to: writer)
        }
        services.unary(ClusterRPC.reserve) { spec, _ in (try await self.reserve(spec), ByteBuffer()) }
        services.unary(ClusterRPC.prefill) { request, _ in (try await self.prefill(request), ByteBuffer()) }
        services.serverStreaming(ClusterRPC.attach) { request, _, writer in try await self.attach(request, writer) }
        services.unary(ClusterRPC.release) { request, _ in
            self.release(RequestID(request.requestID), immediate: UInt32(truncatingIfNeeded: request.requestID))
            return (Loom_Cluster_Empty(), ByteBuffer())
        }
        return services
    }

    public var rpcConfiguration: RPCConfiguration { rpc }

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

    public func shutdown() {
        peers.closeAll()
        staging?.close()
        engine.shutdown()
    }

    func request(_ spec: Loom_Cluster_GenerationSpec) -> GenerationRequest {
        var request = spec.request
        if spec.jsonMode { request.constraint = served.jsonConstraint() }
        return request
    }

    /// Forwards engine outputs as stream items. Engine refusals become
    /// errors the router can map back to HTTP statuses.
    func stream(_ outputs: AsyncThrowingStream<GenerationOutput, Error>, to writer: RPCStreamWriter) async throws {
        do {
            for try await output in outputs {
                if let item = Loom_Cluster_TokenEvent(output) { try await writer.send(item) }
            }
        } catch let error as SchedulerError {
            throw WireError(error)
        }
    }

    // MARK: Decode side

    func reserve(_ spec: Loom_Cluster_GenerationSpec) async throws -> Loom_Cluster_Reservation {
        let reservation: KVReservation
        do {
            reservation = try await engine.reserve(request(spec))
        } catch let error as SchedulerError {
            throw WireError(error)
        }
        let immediate = UInt32(truncatingIfNeeded: reservation.id.rawValue)
        let bytesPerBlock = engine.kvLayout.bytesPerBlock
        let blocks = reservation.blocksToFill.map { Int($0) }
        var staged: RegisteredRegion?
        if let staging, !blocks.isEmpty {
            do {
                staged = try staging.stage(immediate, blocks: blocks, bytesPerBlock: bytesPerBlock)
            } catch {
                engine.cancel(reservation.id)
                throw WireError(.handlerFailed, "could not register \(blocks.count) KV blocks with the fabric endpoint: \(error)")
            }
        }
        leases.open(immediate, .init(
            regionID: pool.descriptor.regionID, epoch: pool.descriptor.epoch, blockBytes: UInt64(bytesPerBlock),
            offsets: Set(blocks.map { UInt64($0 * bytesPerBlock) })))
        let lease = configuration.lease
        Task { [weak self] in
            try? await Task.sleep(for: lease)
            self?.release(reservation.id, immediate: immediate)
        }
        var wire = Loom_Cluster_Reservation()
        wire.requestID = reservation.id.rawValue
        // Over fabric the writer fills the staged region's pages in order.
        wire.region = (staged ?? pool).descriptor.proto
        wire.blocks = staged == nil ? blocks.map { UInt32($0) } : blocks.indices.map { UInt32($0) }
        wire.firstBlock = UInt32(reservation.cachedBlocks)
        wire.bytesPerBlock = UInt64(bytesPerBlock)
        wire.immediate = immediate
        wire.transferHost = configuration.host
        wire.transferPort = UInt32(port)
        wire.leaseMs = UInt32(clamping: lease.wholeMilliseconds)
        wire.cachedTokens = UInt32(reservation.cachedBlocks * engine.kvLayout.blockSize)
        wire.hostID = HostIdentity.current
        return wire
    }

    /// Drops a reservation whose prefill never came (or failed); a no-op
    /// once it was attached.
    func release(_ id: RequestID, immediate: UInt32) {
        guard leases.close(immediate) != nil else { return }
        staging?.discard(immediate)
        target.counters.reset(immediate)
        engine.cancel(id)
    }

    func attach(_ request: Loom_Cluster_AttachRequest, _ writer: RPCStreamWriter) async throws {
        let id = RequestID(request.requestID)
        let immediate = UInt32(truncatingIfNeeded: request.requestID)
        do {
            try await target.counters.wait(for: immediate, count: Int(request.expectedWrites), timeout: .milliseconds(Int(request.timeoutMs)))
        } catch {
            release(id, immediate: immediate)
            throw error
        }
        guard let lease = leases.close(immediate) else {
            throw WireError(.handlerFailed, "reservation \(id) expired before its KV arrived; prefill the request again")
        }
        target.counters.reset(immediate)
        staging?.unstage(immediate, into: pool, bytesPerBlock: engine.kvLayout.bytesPerBlock)
        kvBlocksReceived.add(UInt64(lease.offsets.count), ordering: .relaxed)
        let first = request.first
        guard case .token(let token, let logprob, let top) = first.output else { return }
        try await stream(engine.attach(id, firstToken: token, logprob: logprob, top: top), to: writer)
    }
}

extension WireError {
    /// Scheduler refusals travel as codes 2000 and up, so the router can
    /// answer the client as `loom serve` would (429 for overload, 400 for
    /// a request that does not fit).
    static let schedulerCodeBase: UInt32 = 2000
    /// Append only: the index is the wire code.
    static let schedulerCodes: [SchedulerError.Code] = [.overloaded, .contextOverflow, .exceedsKVCapacity, .invalidRequest, .invalidConfiguration, .unavailable]

    public init(_ error: SchedulerError) {
        let index = Self.schedulerCodes.firstIndex(of: error.code) ?? 0
        self.init(Code(rawValue: Self.schedulerCodeBase + 1 + UInt32(index)), error.message)
    }

    /// The scheduler refusal this error carries, if it is one.
    public var schedulerError: SchedulerError? {
        let index = Int(code.rawValue) - Int(Self.schedulerCodeBase) - 1
        guard Self.schedulerCodes.indices.contains(index) else { return nil }
        return SchedulerError(Self.schedulerCodes[index], message)
    }
}
