import LoomProtocol
import LoomWire

/// What the router knows about one worker incarnation: the membership record
/// and the row `loomctl status` prints.
public struct WorkerStatus: Sendable, Equatable {
    public var id: WorkerID
    public var role: WorkerRole
    /// Where the worker's RPC server is reached.
    public var rpcAddress: RPCAddress
    public var pid: Int
    /// Identifies the process behind `id`: a restarted worker registers with
    /// a new epoch, and messages carrying the old one are stale.
    public var epoch: UInt64
    /// False once the worker missed its heartbeat deadline. A dead worker
    /// stays listed for status but gets no work until it registers again.
    public var alive: Bool
    /// The worker is shutting down: it finishes what it runs but gets no
    /// new request.
    public var draining = false
    public var load: WorkerLoad
    public var registeredAt: ContinuousClock.Instant
    public var lastHeartbeat: ContinuousClock.Instant
    /// KV blocks this worker wrote into other workers' pools.
    public var kvBlocksSent: Int = 0
    /// KV blocks other workers wrote into this worker's pool.
    public var kvBlocksReceived: Int = 0

    public var blockCount: Int { load.blockCount }

    /// Time since the last sign of life (a heartbeat or the registration).
    public func heartbeatAge(at now: ContinuousClock.Instant) -> Duration {
        now - lastHeartbeat
    }
}
