import LoomProtocol
import LoomWire

/// Which workers the cluster has, which are alive and how loaded they are,
/// kept from registrations and heartbeats.
///
/// A value type with time passed in, so tests step a clock by adding
/// durations to an instant instead of sleeping. The caller (the router's RPC
/// service) performs what the results imply: a replaced incarnation or an
/// expired worker must also be dropped from the `PrefixIndex`.
public struct Membership: Sendable {
    private var records: [WorkerID: WorkerStatus] = [:]

    public init() {}

    /// Records a worker process. Registration also counts as a heartbeat and
    /// revives a worker declared dead.
    ///
    /// - Returns: true when this replaced a previous incarnation (a different
    ///   epoch) whose state, cache included, is gone.
    @discardableResult
    public mutating func register(
        _ id: WorkerID, role: WorkerRole, rpcAddress: RPCAddress, pid: Int, epoch: UInt64,
        blockCount: Int, at now: ContinuousClock.Instant
    ) -> Bool {
        precondition(blockCount >= 0, "a KV pool has no negative size")
        let previous = records[id]
        // A repeated registration (its reply was lost, say) keeps the
        // counters; a new process starts from zero.
        var status: WorkerStatus
        if let previous, previous.epoch == epoch {
            status = previous
        } else {
            status = WorkerStatus(
                id: id, role: role, rpcAddress: rpcAddress, pid: pid, epoch: epoch, alive: true,
                load: WorkerLoad(blockCount: blockCount), registeredAt: now, lastHeartbeat: now
            )
        }
        status.role = role
        status.rpcAddress = rpcAddress
        status.pid = pid
        status.alive = true
        status.draining = false
        status.load.blockCount = blockCount
        status.lastHeartbeat = now
        records[id] = status
        return previous.map { $0.epoch != epoch } ?? false
    }

    /// Records a sign of life and the load it reports.
    ///
    /// - Throws: when the worker must register again: its id is unknown, its
    ///   epoch is not the registered one, or it was declared dead.
    public mutating func heartbeat(
        _ id: WorkerID, epoch: UInt64, load: WorkerLoad, draining: Bool = false, at now: ContinuousClock.Instant
    ) throws(MembershipError) {
        guard var status = records[id] else {
            throw MembershipError(.unknownWorker, "no worker \(id) is registered; register first")
        }
        guard status.epoch == epoch else {
            throw MembershipError(.staleEpoch, "worker \(id) is registered with epoch \(status.epoch), not \(epoch)")
        }
        guard status.alive else {
            throw MembershipError(.expired, "worker \(id) missed its heartbeat deadline; register again")
        }
        status.load = load
        status.draining = draining
        status.lastHeartbeat = now
        records[id] = status
    }

    /// Forgets a worker that left on purpose (after draining).
    ///
    /// - Returns: its last record; nil when `id` is unknown or registered
    ///   with another epoch (a newer process took the name).
    public mutating func remove(_ id: WorkerID, epoch: UInt64) -> WorkerStatus? {
        guard records[id]?.epoch == epoch else { return nil }
        return records.removeValue(forKey: id)
    }

    /// Marks dead every live worker silent for longer than `timeout`.
    ///
    /// - Returns: the workers newly marked dead, in id order.
    public mutating func expire(now: ContinuousClock.Instant, timeout: Duration) -> [WorkerID] {
        let expired = records.values
            .filter { $0.alive && now - $0.lastHeartbeat > timeout }
            .map(\.id)
            .sorted()
        for id in expired { records[id]?.alive = false }
        return expired
    }

    // MARK: Queries

    /// Live workers whose role is in `roles` and that take new requests
    /// (not draining), in id order: the routing candidates
    /// (`WorkerRole.decodeCapable` for a decode phase).
    public func alive(roles: Set<WorkerRole>) -> [WorkerStatus] {
        workers.filter { $0.alive && !$0.draining && roles.contains($0.role) }
    }

    public subscript(id: WorkerID) -> WorkerStatus? { records[id] }

    /// Every known worker, dead ones included, in id order.
    public var workers: [WorkerStatus] { records.values.sorted { $0.id < $1.id } }

    // MARK: Transfer counters

    /// Counts `blocks` KV blocks `sender` wrote into `receiver`'s pool.
    public mutating func recordTransfer(_ blocks: Int, from sender: WorkerID, to receiver: WorkerID) {
        recordKVBlocksSent(blocks, by: sender)
        recordKVBlocksReceived(blocks, by: receiver)
    }

    /// Unknown ids are ignored here and below: a transfer can finish after
    /// its peer left, and a count for a gone worker has nowhere to go.
    public mutating func recordKVBlocksSent(_ blocks: Int, by id: WorkerID) {
        precondition(blocks >= 0, "a transfer moves no negative number of blocks")
        records[id]?.kvBlocksSent += blocks
    }

    public mutating func recordKVBlocksReceived(_ blocks: Int, by id: WorkerID) {
        precondition(blocks >= 0, "a transfer moves no negative number of blocks")
        records[id]?.kvBlocksReceived += blocks
    }
}
