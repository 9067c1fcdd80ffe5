import Foundation
import LoomWire
import Logging

/// A process that belongs to a cluster: a worker or a store node. It says
/// who it is when it registers and what changed at each heartbeat.
public protocol ClusterMember: Sendable {
    var memberName: String { get }
    /// Its HELLO identity (node name, epoch) toward the router.
    var rpcConfiguration: RPCConfiguration { get }
    /// A full registration: identity, address, load, and every block it
    /// holds now (the router's index for it starts over from this).
    func registration() -> Loom_Cluster_RegisterRequest
    /// Load and the block changes since the last beat; nil when changes
    /// were dropped, so the member registers again with everything.
    func heartbeat() -> Loom_Cluster_HeartbeatRequest?
}

/// Keeps a member registered with the router: registers with a full
/// snapshot of what it holds, then heartbeats its load and the changes
/// since the last beat. Whenever the router is unreachable or no longer
/// knows this incarnation (it restarted), it registers again, so the
/// router's index is rebuilt from the source of truth.
public struct RouterLink: Sendable {
    public let router: RPCAddress
    public let member: any ClusterMember
    let logger: Logger

    public init(router: RPCAddress, member: any ClusterMember, logger: Logger) {
        self.router = router
        self.member = member
        self.logger = logger
    }

    /// Runs until cancelled.
    public func run() async {
        var announced = false
        while !Task.isCancelled {
            do {
                try await RPCConnection.withConnection(to: router, configuration: member.rpcConfiguration) { connection in
                    let (response, _) = try await connection.unary(ClusterRPC.register, member.registration(), timeout: .seconds(5))
                    if !announced {
                        logger.info("registered with the router", metadata: ["router": "\(router)"])
                        announced = true
                    }
                    try await beat(connection, every: .milliseconds(max(50, Int(response.heartbeatIntervalMs))))
                }
            } catch is CancellationError {
                return
            } catch {
                logger.debug("router link: \(error); registering again")
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
    }

    /// Returns when the router asks for a new registration; throws when it
    /// cannot be reached.
    private func beat(_ connection: RPCConnection, every interval: Duration) async throws {
        while true {
            try await Task.sleep(for: interval)
            guard let request = member.heartbeat() else { return }
            let (response, _) = try await connection.unary(ClusterRPC.heartbeat, request, timeout: interval * 4)
            if response.reregister { return }
        }
    }

    /// Tells the router this member is gone for good, so it drops it at
    /// once; best effort: a router that does not hear it expires the
    /// member when its heartbeats stop.
    public func deregister() async {
        var request = Loom_Cluster_DeregisterRequest()
        request.name = member.memberName
        request.epoch = member.rpcConfiguration.epoch
        _ = try? await RPCConnection.withConnection(to: router, configuration: member.rpcConfiguration) { connection in
            try await connection.unary(ClusterRPC.deregister, request, timeout: .seconds(2))
        }
    }
}
