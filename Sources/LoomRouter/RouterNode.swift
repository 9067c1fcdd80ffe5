import LoomCluster
import LoomProtocol
import LoomWire
import Logging
import NIOCore

/// The router's RPC side: workers register and heartbeat here, and a
/// watchdog declares silent ones dead so they get no new work.
public struct RouterNode: Sendable {
    public let state: ClusterState
    let backend: ClusterBackend
    let logger: Logger

    public init(backend: ClusterBackend, logger: Logger) {
        self.state = backend.state
        self.backend = backend
        self.logger = logger
    }

    public var services: RPCServices {
        var services = RPCServices()
        services.immediate(ClusterRPC.register) { request, _ in
            let response = try state.register(request)
            logger.info("worker registered", metadata: ["worker": "\(request.name)", "role": "\(request.role)", "address": "\(request.rpcHost):\(request.rpcPort)", "cached_blocks": "\(request.cachedHashes.count)"])
            return (response, ByteBuffer())
        }
        services.immediate(ClusterRPC.heartbeat) { request, _ in (state.heartbeat(request), ByteBuffer()) }
        services.immediate(ClusterRPC.deregister) { request, _ in
            if let address = state.deregister(request) {
                logger.info("worker drained and left", metadata: ["worker": "\(request.name)"])
                backend.disconnect(address)
            }
            return (Loom_Cluster_Empty(), ByteBuffer())
        }
        return services
    }

    /// Runs until cancelled.
    public func watchdog() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: state.settings.heartbeatInterval)
            for (id, address) in state.expire() {
                logger.warning("worker missed its heartbeats; no new work goes to it", metadata: ["worker": "\(id)"])
                if let address { backend.disconnect(address) }
            }
        }
    }
}
