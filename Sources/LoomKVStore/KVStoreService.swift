import Foundation
import Logging
import LoomProtocol
import LoomWire
import ServiceLifecycle

/// What the router learns of a store node: its identity, how full its DRAM
/// tier is, and every block it holds (whole at registration, as stored and
/// removed events at each heartbeat), which the router's index records as
/// the store tier: a block any worker can fetch instead of computing.
public struct StoreMembership: ClusterMember {
    public let store: KVStoreNode
    public let modelName: String

    public init(store: KVStoreNode, modelName: String) {
        self.store = store
        self.modelName = modelName
    }

    public var memberName: String { store.configuration.name }
    public var rpcConfiguration: RPCConfiguration { store.rpcConfiguration }

    public func registration() -> Loom_Cluster_RegisterRequest {
        let c = store.configuration
        var request = Loom_Cluster_RegisterRequest()
        request.name = c.name
        request.role = .kvstore
        request.rpcHost = c.host
        request.rpcPort = UInt32(store.port)
        request.pid = UInt32(ProcessInfo.processInfo.processIdentifier)
        request.epoch = store.rpcConfiguration.epoch
        request.blockCount = UInt32(c.slots)
        request.blockSize = UInt32(c.layout.blockSize)
        request.modelName = modelName
        let held = store.snapshotResettingEvents()
        request.cachedHashes = held.all.map(\.rawValue)
        request.diskOnlyHashes = held.diskOnly.map(\.rawValue)
        request.load = load
        return request
    }

    public func heartbeat() -> Loom_Cluster_HeartbeatRequest? {
        var request = Loom_Cluster_HeartbeatRequest()
        request.name = store.configuration.name
        request.epoch = store.rpcConfiguration.epoch
        request.load = load
        guard let events = store.drainEvents() else { return nil }
        request.events = events.map(\.wire)
        return request
    }

    private var load: Loom_Cluster_Load {
        let stats = store.stats
        var load = Loom_Cluster_Load()
        load.usedBlocks = stats.committed
        load.blockCount = stats.slots
        load.cachedBlocks = stats.committed + stats.diskBlocks
        load.blockBytes = UInt64(store.configuration.layout.payloadBytes)
        load.store = stats
        return load
    }
}

/// A store node process as one service: its RPC server, its link to the
/// router (none when it serves alone) and the lease sweeper run until a
/// graceful shutdown (SIGTERM), then it leaves the router and stops.
public struct KVStoreService: Service {
    let store: KVStoreNode
    let server: RPCServer
    let link: RouterLink?
    let logger: Logger

    public init(store: KVStoreNode, server: RPCServer, link: RouterLink?, logger: Logger) {
        self.store = store
        self.server = server
        self.link = link
        self.logger = logger
    }

    public func run() async throws {
        defer { store.shutdown() }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.run() }
                if let link { group.addTask { await link.run() } }
                group.addTask { await store.sweep() }
                group.addTask {
                    guard (try? await gracefulShutdown()) != nil else { return }
                    if store.disk != nil { logger.info("wrote \(store.flushToDisk()) blocks from DRAM to disk for the next start") }
                    if let link {
                        await link.deregister()
                        logger.info("left the router")
                    }
                    throw Stopped()
                }
            }
        } catch is Stopped {
            // The way a graceful shutdown ends.
        }
    }

    private struct Stopped: Error {}
}
