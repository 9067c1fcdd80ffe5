import LoomProtocol

/// A worker's name in the cluster, unique per cluster (`decode-0`). The name
/// outlives a process: a restarted worker comes back under the same id with a
/// new epoch.
public struct WorkerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }

    public var description: String { name }
    public static func < (lhs: WorkerID, rhs: WorkerID) -> Bool { lhs.name < rhs.name }
}

/// Load a worker reports in each heartbeat.
public struct WorkerLoad: Sendable, Equatable {
    /// Sequences in the running batch.
    public var running: Int
    /// Sequences admitted but waiting for a batch slot or KV blocks.
    public var waiting: Int
    /// KV blocks referenced by live sequences.
    public var usedBlocks: Int
    /// KV blocks in the worker's pool.
    public var blockCount: Int

    public init(running: Int = 0, waiting: Int = 0, usedBlocks: Int = 0, blockCount: Int) {
        self.running = running
        self.waiting = waiting
        self.usedBlocks = usedBlocks
        self.blockCount = blockCount
    }

    /// Requests the worker already owes work to.
    public var queued: Int { running + waiting }

    /// Fraction of the KV pool in use, 0...1 (1 for an empty pool, which can
    /// take nothing).
    public var kvUse: Double {
        blockCount > 0 ? Double(usedBlocks) / Double(blockCount) : 1
    }

    /// Blocks not referenced by a live sequence. Cached but unreferenced
    /// blocks count as free: the pool evicts them on demand.
    public var freeBlocks: Int { max(0, blockCount - usedBlocks) }
}
