import Foundation
import LoomProtocol
import LoomWire

/// What the router learns of this worker: its engine's cache, whole at
/// registration and as events at each heartbeat.
public struct WorkerMembership: ClusterMember {
    public let worker: WorkerNode
    public let blockSize: Int
    public let modelName: String
    /// A tensor-parallel worker's ranks, itself first.
    public let ranks: [Loom_Cluster_GroupRank]

    public init(worker: WorkerNode, blockSize: Int, modelName: String, ranks: [Loom_Cluster_GroupRank] = []) {
        self.worker = worker
        self.blockSize = blockSize
        self.modelName = modelName
        self.ranks = ranks
    }

    public var memberName: String { worker.configuration.name }
    public var rpcConfiguration: RPCConfiguration { worker.rpcConfiguration }

    public func registration() -> Loom_Cluster_RegisterRequest {
        let c = worker.configuration
        var request = Loom_Cluster_RegisterRequest()
        request.name = c.name
        request.role = c.role.wire
        request.rpcHost = c.host
        request.rpcPort = UInt32(worker.port)
        request.pid = UInt32(ProcessInfo.processInfo.processIdentifier)
        request.epoch = worker.rpcConfiguration.epoch
        request.blockCount = UInt32(worker.engine.snapshot.blockCount)
        request.blockSize = UInt32(blockSize)
        request.modelName = modelName
        request.cachedHashes = worker.engine.cachedHashesResettingEvents().map(\.rawValue)
        request.load = worker.load
        request.ranks = ranks
        return request
    }

    public func heartbeat() -> Loom_Cluster_HeartbeatRequest? {
        var request = Loom_Cluster_HeartbeatRequest()
        request.name = worker.configuration.name
        request.epoch = worker.rpcConfiguration.epoch
        request.load = worker.load
        request.draining = worker.isDraining
        // Events were dropped while nobody read them: register again with
        // the whole cache instead.
        guard let events = worker.engine.drainCacheEvents() else { return nil }
        request.events = events.map(Loom_Cluster_CacheEvent.init)
        return request
    }
}
