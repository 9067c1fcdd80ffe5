import Foundation
import LoomEngine
import LoomProtocol
import LoomWire
import Logging

/// Keeps this worker registered with the router: registers with a full
/// snapshot of its prefix cache, then heartbeats its load and the cache
/// changes since the last beat. Whenever the router is unreachable or no
/// longer knows this incarnation (it restarted), it registers again, so
/// the router's index is rebuilt from the source of truth.
public struct RouterLink: Sendable {
    public let router: RPCAddress
    public let worker: WorkerNode
    public let blockSize: Int
    public let modelName: String
    let logger: Logger

    public init(router: RPCAddress, worker: WorkerNode, blockSize: Int, modelName: String, logger: Logger) {
        self.router = router
        self.worker = worker
        self.blockSize = blockSize
        self.modelName = modelName
        self.logger = logger
    }

    /// Runs until cancelled.
    public func run() async {
        var announced = false
        while !Task.isCancelled {
            do {
                try await RPCConnection.withConnection(to: router, configuration: worker.rpcConfiguration) { connection in
                    let interval = try await register(connection)
                    if !announced {
                        logger.info("registered with the router", metadata: ["router": "\(router)"])
                        announced = true
                    }
                    try await beat(connection, every: interval)
                }
            } catch is CancellationError {
                return
            } catch {
                logger.debug("router link: \(error); registering again")
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
    }

    private func register(_ connection: RPCConnection) async throws -> Duration {
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
        let (response, _) = try await connection.unary(ClusterRPC.register, request, timeout: .seconds(5))
        return .milliseconds(max(50, Int(response.heartbeatIntervalMs)))
    }

    /// Returns when the router asks for a new registration; throws when it
    /// cannot be reached.
    private func beat(_ connection: RPCConnection, every interval: Duration) async throws {
        while true {
            try await Task.sleep(for: interval)
            var request = Loom_Cluster_HeartbeatRequest()
            request.name = worker.configuration.name
            request.epoch = worker.rpcConfiguration.epoch
            request.load = worker.load
            request.draining = worker.isDraining
            // Events were dropped while nobody read them: register again
            // with the whole cache instead.
            guard let events = worker.engine.drainCacheEvents() else { return }
            request.events = events.map(Loom_Cluster_CacheEvent.init)
            let (response, _) = try await connection.unary(ClusterRPC.heartbeat, request, timeout: interval * 4)
            if response.reregister { return }
        }
    }

    /// Tells the router this worker is gone for good, so it drops it at
    /// once; best effort: a router that does not hear it expires the
    /// worker when its heartbeats stop.
    public func deregister() async {
        var request = Loom_Cluster_DeregisterRequest()
        request.name = worker.configuration.name
        request.epoch = worker.rpcConfiguration.epoch
        _ = try? await RPCConnection.withConnection(to: router, configuration: worker.rpcConfiguration) { connection in
            try await connection.unary(ClusterRPC.deregister, request, timeout: .seconds(2))
        }
    }
}
