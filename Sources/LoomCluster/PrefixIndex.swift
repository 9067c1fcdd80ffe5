import LoomEngine

/// The router's exact global index of which worker caches which KV block,
/// kept by replaying every worker's `KVCacheEvent`s.
///
/// Exactness rests on two things the transport must give: a worker's events
/// arrive in the order its `BlockPool` emitted them, and a worker that
/// (re)registers sends a full snapshot (`replace`) so whatever was lost before
/// is overwritten. Single events are idempotent (storing a held hash or
/// removing an absent one changes nothing), so a redelivered event is
/// harmless; a reordered pair is not, which is why order is a contract.
///
/// A value type with no clock and no I/O, so a simulated fleet of pools can
/// drive it in tests and benchmarks.
public struct PrefixIndex: Sendable {
    private var holders: [BlockHash: Set<WorkerID>] = [:]
    private var held: [WorkerID: Set<BlockHash>] = [:]
    public private(set) var entryCount = 0
    private var lookedUpBlocks = 0
    private var hitBlocks = 0

    public init() {}

    // MARK: Updates

    /// Replays `events` from `worker`, oldest first.
    public mutating func apply(_ events: [KVCacheEvent], from worker: WorkerID) {
        for event in events {
            switch event {
            case .stored(let hash, _): insert(hash, on: worker)
            case .removed(let hash): delete(hash, on: worker)
            }
        }
    }

    /// Makes `hashes` the whole of what `worker` caches: the snapshot a worker
    /// sends when it (re)registers, after which its events apply on top.
    public mutating func replace(_ worker: WorkerID, with hashes: Set<BlockHash>) {
        remove(worker)
        for hash in hashes { insert(hash, on: worker) }
    }

    /// Forgets everything `worker` caches (it died or was replaced).
    public mutating func remove(_ worker: WorkerID) {
        guard let hashes = held.removeValue(forKey: worker) else { return }
        for hash in hashes { dropHolder(worker, of: hash) }
        entryCount -= hashes.count
    }

    // MARK: Queries

    /// The length of the longest prefix of `chain` whose every block `worker`
    /// holds. A chain is only usable from its start: a later block's KV was
    /// computed over the blocks before it, so a hole ends the usable prefix.
    public func cachedBlocks(_ chain: [BlockHash], on worker: WorkerID) -> Int {
        guard let hashes = held[worker] else { return 0 }
        return chain.firstIndex(where: { !hashes.contains($0) }) ?? chain.count
    }

    public func hashes(of worker: WorkerID) -> Set<BlockHash> { held[worker] ?? [] }

    /// Workers holding `hash`, in id order.
    public func holders(of hash: BlockHash) -> [WorkerID] { (holders[hash] ?? []).sorted() }

    /// Blocks cached on at least one worker.
    public var distinctBlocks: Int { holders.count }

    // MARK: Hit-rate accounting

    /// Counts one routing decision: the prompt had `promptBlocks` blocks and
    /// the chosen worker already held `hitBlocks` of them.
    public mutating func recordLookup(promptBlocks: Int, hitBlocks: Int) {
        precondition(hitBlocks >= 0 && hitBlocks <= promptBlocks, "hits must lie within the prompt")
        lookedUpBlocks += promptBlocks
        self.hitBlocks += hitBlocks
    }

    /// Hit blocks over looked-up blocks since the index was made; 0 before
    /// any lookup.
    public var hitRate: Double {
        lookedUpBlocks > 0 ? Double(hitBlocks) / Double(lookedUpBlocks) : 0
    }

    // MARK: Private

    private mutating func insert(_ hash: BlockHash, on worker: WorkerID) {
        guard held[worker, default: []].insert(hash).inserted else { return }
        holders[hash, default: []].insert(worker)
        entryCount += 1
    }

    private mutating func delete(_ hash: BlockHash, on worker: WorkerID) {
        guard held[worker]?.remove(hash) != nil else { return }
        if held[worker]?.isEmpty == true { held[worker] = nil }
        dropHolder(worker, of: hash)
        entryCount -= 1
    }

    private mutating func dropHolder(_ worker: WorkerID, of hash: BlockHash) {
        holders[hash]?.remove(worker)
        if holders[hash]?.isEmpty == true { holders[hash] = nil }
    }
}
