import Logging
import LoomProtocol
import LoomWire
import ServiceLifecycle

/// A worker process as one service: its RPC server, its link to the router
/// and the reservation sweeper run until a graceful shutdown (SIGTERM);
/// then it drains — takes no new request, finishes those under way, leaves
/// the router — and stops.
public struct WorkerService: Service {
    let node: WorkerNode
    let server: RPCServer
    let link: RouterLink
    /// How long finishing the requests under way may take before the
    /// worker stops anyway (the router continues them elsewhere).
    let drainTimeout: Duration
    let logger: Logger

    public init(node: WorkerNode, server: RPCServer, link: RouterLink, drainTimeout: Duration, logger: Logger) {
        self.node = node
        self.server = server
        self.link = link
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    public func run() async throws {
        defer { node.shutdown() }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.run() }
                group.addTask { await link.run() }
                group.addTask { await node.sweepLeases() }
                group.addTask { await node.publishToStores(logger: logger) }
                // Ends the group once drained; if the server fails first,
                // the group's cancellation ends this without draining.
                group.addTask {
                    guard (try? await gracefulShutdown()) != nil else { return }
                    await drain()
                    throw Drained()
                }
            }
        } catch is Drained {
            // The way a graceful shutdown ends.
        }
    }

    private struct Drained: Error {}

    private func drain() async {
        node.beginDraining()
        logger.info("draining: finishing the requests under way, taking no new one")
        let deadline = ContinuousClock.now + drainTimeout
        while !node.isIdle && ContinuousClock.now < deadline && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if !node.isIdle {
            logger.warning("stopping with requests still under way after \(drainTimeout); the router continues them elsewhere")
        }
        await link.deregister()
        logger.info("drained and deregistered")
    }
}
