import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomWire
import Synchronization

/// Where one request goes: the decode worker, and the prefill worker when
/// the prompt is worth shipping (nil: the decode worker prefills itself).
public struct Route: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var id: WorkerID
        public var address: RPCAddress
    }

    public var decode: Target
    public var prefill: Target?
    /// Prompt tokens the decode worker already holds (from the index).
    public var cachedTokens: Int
    /// Leading prompt tokens a KV store node holds (from the index).
    public var storedTokens: Int = 0
}

/// The router's view of the cluster: membership, the exact prefix index fed
/// by the workers' cache events, the routing policies, and the requests it
/// has sent to each worker and not seen finish (fresher than heartbeats,
/// which lag a burst of arrivals).
public final class ClusterState: Sendable {
    public struct Settings: Sendable {
        public var decodePolicy: RoutingPolicyName
        public var prefixWeight: Double
        public var disaggregationThreshold: Int
        public var heartbeatInterval: Duration
        public var heartbeatTimeout: Duration
        public var hasher: BlockHasher
        /// The model every worker must serve; nil accepts any (tests).
        public var modelName: String?

        public init(decodePolicy: RoutingPolicyName = .prefixAware, prefixWeight: Double = 1, disaggregationThreshold: Int = 32,
                    heartbeatInterval: Duration = .milliseconds(500), heartbeatTimeout: Duration = .seconds(3), hasher: BlockHasher,
                    modelName: String? = nil) {
            self.modelName = modelName
            self.decodePolicy = decodePolicy
            self.prefixWeight = prefixWeight
            self.disaggregationThreshold = disaggregationThreshold
            self.heartbeatInterval = heartbeatInterval
            self.heartbeatTimeout = heartbeatTimeout
            self.hasher = hasher
        }
    }

    struct State {
        var membership = Membership()
        var index = PrefixIndex()
        var decodePolicy: any RoutingPolicy
        var prefillPolicy: any RoutingPolicy
        var inFlight: [WorkerID: Int] = [:]
        /// Per worker, the KV-transfer totals it last reported.
        var reported: [WorkerID: Loom_Cluster_Load] = [:]
        /// Per tensor-parallel worker, its ranks as it registered them.
        var ranks: [WorkerID: [Loom_Cluster_GroupRank]] = [:]
        var decisions: [String: Int] = [:]
        /// Prefixes pinned in the store through this router, until they expire.
        var pins: [PinRecord] = []
        /// Per store node, the blocks of its in the index that it holds on
        /// disk only: the index's tier of each store block.
        var storeDisk: [WorkerID: Set<BlockHash>] = [:]
    }

    public let settings: Settings
    let state: Mutex<State>
    let metrics: RouterMetrics?

    public init(settings: Settings, metrics: RouterMetrics? = nil) {
        self.settings = settings
        self.metrics = metrics
        state = Mutex(State(
            decodePolicy: settings.decodePolicy.make(prefixWeight: settings.prefixWeight),
            prefillPolicy: RoutingPolicyName.prefixAware.make(prefixWeight: settings.prefixWeight)))
    }

    // MARK: Membership

    public func register(_ request: Loom_Cluster_RegisterRequest) throws -> Loom_Cluster_RegisterResponse {
        guard let role = WorkerRole(request.role) else {
            throw WireError(.badMessage, "worker \(request.name) registered with role \(request.role), which this router does not know; run the same Loom version everywhere")
        }
        guard request.blockSize == UInt32(settings.hasher.blockSize) else {
            throw WireError(.badMessage, "worker \(request.name) uses KV blocks of \(request.blockSize) tokens but the router hashes blocks of \(settings.hasher.blockSize)")
        }
        if let modelName = settings.modelName, request.modelName != modelName {
            throw WireError(.badMessage, "worker \(request.name) serves '\(request.modelName)' but this router serves '\(modelName)'; start it with the same --model")
        }
        let id = WorkerID(request.name)
        state.withLock { state in
            state.membership.register(
                id, role: role, rpcAddress: .tcp(host: request.rpcHost, port: Int(request.rpcPort)), pid: Int(request.pid),
                epoch: request.epoch, blockCount: Int(clamping: request.blockCount), at: .now)
            // A registration carries the whole cache: the index starts over
            // for this worker whatever it believed before.
            state.index.replace(id, with: Set(request.cachedHashes.map(BlockHash.init(rawValue:))))
            state.storeDisk[id] = role == .kvstore ? Set(request.diskOnlyHashes.map(BlockHash.init(rawValue:))) : nil
            state.reported[id] = request.load
            state.ranks[id] = request.ranks.isEmpty ? nil : request.ranks
        }
        var response = Loom_Cluster_RegisterResponse()
        response.heartbeatIntervalMs = UInt32(clamping: settings.heartbeatInterval.wholeMilliseconds)
        return response
    }

    public func heartbeat(_ request: Loom_Cluster_HeartbeatRequest) -> Loom_Cluster_HeartbeatResponse {
        let id = WorkerID(request.name)
        var response = Loom_Cluster_HeartbeatResponse()
        state.withLock { state in
            let load = request.load
            do {
                try state.membership.heartbeat(id, epoch: request.epoch, load: WorkerLoad(
                    running: Int(load.running), waiting: Int(load.waiting) + Int(load.reserved),
                    usedBlocks: Int(load.usedBlocks), blockCount: Int(load.blockCount)), draining: request.draining, at: .now)
            } catch {
                response.reregister = true
                return
            }
            state.index.apply(request.events.map(\.event), from: id)
            if state.storeDisk[id] != nil { state.storeDisk[id]!.apply(request.events) }
            let before = state.reported[id] ?? Loom_Cluster_Load()
            // Counters a worker reports are totals; a smaller one means a
            // new incarnation. Clamped: they come from another process.
            let sent = load.kvBlocksSent >= before.kvBlocksSent ? load.kvBlocksSent - before.kvBlocksSent : 0
            let received = load.kvBlocksReceived >= before.kvBlocksReceived ? load.kvBlocksReceived - before.kvBlocksReceived : 0
            state.membership.recordKVBlocksSent(Int(clamping: sent), by: id)
            state.membership.recordKVBlocksReceived(Int(clamping: received), by: id)
            state.reported[id] = load
        }
        return response
    }

    /// Forgets a worker that drained and left; returns the address it was
    /// reached on, nil when that incarnation is not registered.
    public func deregister(_ request: Loom_Cluster_DeregisterRequest) -> RPCAddress? {
        state.withLock { state in
            let id = WorkerID(request.name)
            guard let gone = state.membership.remove(id, epoch: request.epoch) else { return nil }
            state.index.remove(id)
            state.reported[id] = nil
            state.ranks[id] = nil
            state.storeDisk[id] = nil
            return gone.rpcAddress
        }
    }

    /// Declares silent workers dead and forgets their cache; returns them
    /// with the addresses they were reached on.
    @discardableResult
    public func expire() -> [(WorkerID, RPCAddress?)] {
        state.withLock { state in
            let dead = state.membership.expire(now: .now, timeout: settings.heartbeatTimeout)
            for id in dead {
                state.index.remove(id)
                state.storeDisk[id] = nil
            }
            return dead.map { ($0, state.membership[$0]?.rpcAddress) }
        }
    }
}

extension Set<BlockHash> {
    /// A store node's disk-only blocks after its events: a block moved to
    /// disk joins, one stored in DRAM again or removed leaves.
    mutating func apply(_ events: [Loom_Cluster_CacheEvent]) {
        for event in events {
            let hash = BlockHash(rawValue: event.hash)
            if event.stored && event.onDisk { insert(hash) } else { remove(hash) }
        }
    }
}
