import Foundation
import LoomEngine
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

/// The decode half of disaggregated serving: hold blocks for a prompt
/// another worker prefills (`reserve`), then decode once its KV landed
/// (`attach`). Each reservation is a lease in `leases`, ended by the attach,
/// a release, or the sweeper.
struct DecodeService: Sendable {
    let engine: InferenceEngine
    let json: JSONTokenTable
    /// The engine's KV pool, registered for prefill workers to write into.
    let pool: RegisteredRegion
    let counters: ImmediateCounters
    let leases: LockedWriteLeases<PoolWriter>
    /// Set when KV blocks travel over `fabric`.
    let staging: FabricStaging?
    /// How long a reservation waits for its prefill before its blocks return.
    let lease: Duration
    /// Where prefill workers reach this worker's transfer target.
    let host: String
    let port: BoundPort
    let calls: WorkerCalls
    /// This worker's heads, and its group's other pools (none alone).
    let group: GroupKV

    func serve(into services: inout RPCServices) {
        services.unary(ClusterRPC.reserve) { spec, _ in
            (try await calls.serving(new: true) { try await reserve(spec) }, ByteBuffer())
        }
        // An attach finishes a request already under way: served while draining.
        services.serverStreaming(ClusterRPC.attach) { request, _, writer in
            try await calls.serving(new: false) { try await attach(request, writer) }
        }
        services.unary(ClusterRPC.release) { request, _ in
            release(RequestID(request.requestID), immediate: UInt32(truncatingIfNeeded: request.requestID))
            return (Loom_Cluster_Empty(), ByteBuffer())
        }
    }

    func reserve(_ spec: Loom_Cluster_GenerationSpec) async throws -> Loom_Cluster_Reservation {
        let reservation: KVReservation
        do {
            reservation = try await engine.reserve(spec.request(json: json))
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
        leases.open(immediate, .init(holder: .reservation(reservation.id), pages: blocks, of: pool.descriptor, pageBytes: bytesPerBlock,
                                     deadline: .now + lease))
        var wire = Loom_Cluster_Reservation()
        wire.requestID = reservation.id.rawValue
        // Over fabric the writer fills the staged region's pages in order.
        wire.region = try (staged ?? pool).descriptor.proto.serializedData()
        wire.blocks = staged == nil ? blocks.map { UInt32($0) } : blocks.indices.map { UInt32($0) }
        wire.firstBlock = UInt32(reservation.cachedBlocks)
        wire.bytesPerBlock = UInt64(bytesPerBlock)
        wire.immediate = immediate
        wire.transferHost = host
        wire.transferPort = UInt32(port.value)
        wire.leaseMs = UInt32(clamping: lease.wholeMilliseconds)
        wire.cachedTokens = UInt32(reservation.cachedBlocks * engine.kvLayout.blockSize)
        wire.hostID = HostIdentity.current
        if group.isGroup { wire.ranks = [rankPool(wire)] + group.pools }
        return wire
    }

    /// Rank 0's pool, as a group's reservation lists it with the others.
    private func rankPool(_ wire: Loom_Cluster_Reservation) -> Loom_Cluster_RankPool {
        var pool = Loom_Cluster_RankPool(wholeOf: wire, kvHeads: group.heads[0].count)
        pool.firstKvHead = UInt32(group.heads[0].lowerBound)
        return pool
    }

    /// Drops a reservation whose prefill never came (or failed); a no-op
    /// once it was attached.
    func release(_ id: RequestID, immediate: UInt32) {
        guard leases.close(immediate) != nil else { return }
        forget(id, immediate: immediate)
    }

    /// Returns the blocks of reservations whose lease ran out, every
    /// `interval`, until cancelled: one sweeper for all of them.
    func sweepLeases(every interval: Duration) async {
        while !Task.isCancelled {
            for (immediate, lease) in leases.expire(now: .now) {
                switch lease.holder {
                case .reservation(let id): forget(id, immediate: immediate)
                // Its fetcher gave up already, or is about to and frees it.
                case .fetch, .fence: counters.reset(immediate)
                }
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func forget(_ id: RequestID, immediate: UInt32) {
        staging?.discard(immediate)
        counters.reset(immediate)
        engine.cancel(id)
    }

    func attach(_ request: Loom_Cluster_AttachRequest, _ writer: RPCStreamWriter) async throws {
        let id = RequestID(request.requestID)
        let immediate = UInt32(truncatingIfNeeded: request.requestID)
        do {
            try await counters.wait(for: immediate, count: Int(request.expectedWrites), timeout: .milliseconds(Int(request.timeoutMs)))
        } catch {
            release(id, immediate: immediate)
            throw error
        }
        guard let lease = leases.close(immediate) else {
            throw WireError(.handlerFailed, "reservation \(id) expired before its KV arrived; prefill the request again")
        }
        counters.reset(immediate)
        staging?.unstage(immediate, into: pool, bytesPerBlock: engine.kvLayout.bytesPerBlock)
        calls.kvBlocksReceived.add(UInt64(lease.offsets.count), ordering: .relaxed)
        let first = request.first
        guard case .token(let token, let logprob, let top) = first.output else { return }
        try await writer.send(engine.attach(id, firstToken: token, logprob: logprob, top: top))
    }
}

/// Who may write into this worker's registered memory: the prefill worker
/// filling a reservation, a store node pushing a fetch into staging, or a
/// rank of this worker's prefill group signalling its fence.
enum PoolWriter: Sendable {
    case reservation(RequestID)
    case fetch
    /// A prefill group's rank saying it is done with a chunk (no pages).
    case fence
}

/// The port this worker's server is bound to, known only once it is (a
/// configured port of 0).
final class BoundPort: Sendable {
    private let port: Atomic<Int>

    init(_ port: Int) {
        self.port = Atomic(port)
    }

    var value: Int { port.load(ordering: .relaxed) }

    func set(_ port: Int) {
        self.port.store(port, ordering: .relaxed)
    }
}
