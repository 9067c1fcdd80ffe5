import LoomModel

/// A block's index in the worker's KV memory (`KVCacheMemory`), the same
/// integer `ForwardBatch` block tables carry.
public typealias BlockID = Int32

/// The bookkeeping of a fixed set of KV blocks: who references each block and
/// which full blocks are reusable by their hash. It owns no memory; the KV
/// memory it describes belongs to whoever hands `KVCacheMemory` to the model.
///
/// Invariants (checked by preconditions here and in `Scheduler`):
/// - A block's reference count is the number of live block tables holding it;
///   `freeCount + usedCount == blockCount` and a free block has count 0.
/// - Block tables are append-only: a sequence only ever adds blocks at the end
///   of its table, and drops the whole table at once when it finishes or is
///   preempted. That is why a shared prefix stays valid for every holder.
/// - A cached block is never written again: a block gets its hash only once
///   all its slots are written, and the scheduler never schedules a write into
///   a block that has a hash. Shared blocks are therefore read-only.
/// - A released block keeps its contents and its hash until `allocate` hands
///   it out again; only then is `removed` emitted.
public struct BlockPool: Sendable {
    struct CachedBlock: Sendable {
        var hash: BlockHash
        var parent: BlockHash?
        var tokens: [TokenID]
    }

    public let blockCount: Int
    public let blockSize: Int
    private var refCounts: [Int32]
    private var cached: [CachedBlock?]
    private var index: [BlockHash: BlockID] = [:]
    /// Free blocks with no hash, handed out before any cached block is evicted.
    private var uncachedFree: [BlockID]
    private var evictable: EvictionList
    private var pendingEvents: [KVCacheEvent] = []
    /// Cached blocks dropped to make room, since the pool was made.
    public private(set) var evictions = 0

    public init(blockCount: Int, blockSize: Int = KVCacheLayout.defaultBlockSize) {
        precondition(blockCount > 0 && blockCount <= Int(Int32.max), "a pool needs between 1 and Int32.max blocks")
        precondition(blockSize > 0, "a block holds at least one token")
        self.blockCount = blockCount
        self.blockSize = blockSize
        refCounts = Array(repeating: 0, count: blockCount)
        cached = Array(repeating: nil, count: blockCount)
        // Reversed so that `popLast` hands out low ids first, which keeps
        // small tests readable and touches memory front to back.
        uncachedFree = (0..<Int32(blockCount)).reversed()
        evictable = EvictionList(capacity: blockCount)
    }

    // MARK: Inspection

    public var freeCount: Int { uncachedFree.count + evictable.count }
    public var usedCount: Int { blockCount - freeCount }
    public var cachedBlockCount: Int { index.count }
    public func refCount(_ block: BlockID) -> Int { Int(refCounts[Int(block)]) }
    public func hash(of block: BlockID) -> BlockHash? { cached[Int(block)]?.hash }
    public func block(for hash: BlockHash) -> BlockID? { index[hash] }
    /// Every hash the pool can serve: what a router replaying this pool's
    /// events must hold.
    public var cachedHashes: Set<BlockHash> { Set(index.keys) }
    /// Unreferenced cached blocks, the next to be evicted first.
    public var evictionOrder: [BlockID] { evictable.inOrder }

    // MARK: Prefix lookup

    /// The blocks holding the longest cached prefix of a sequence whose full
    /// blocks hash to `hashes`, at most `maxBlocks` long. Each hit is checked
    /// against its parent and tokens too, so a 64-bit collision can cost a
    /// cache miss but never hand a request someone else's KV.
    public func cachedPrefix(hashes: [BlockHash], tokens: [TokenID], maxBlocks: Int, in namespace: CacheNamespace? = nil) -> [BlockID] {
        var hits: [BlockID] = []
        for (i, hash) in hashes.prefix(maxBlocks).enumerated() {
            guard let block = index[hash], let entry = cached[Int(block)],
                  entry.parent == BlockHasher.parent(of: i, in: hashes, namespace: namespace),
                  entry.tokens.elementsEqual(tokens[i * blockSize..<(i + 1) * blockSize])
            else { break }
            hits.append(block)
        }
        return hits
    }

    /// The cached blocks of the chain ending in `hash`, head first: what a
    /// block whose parent is `hash` continues.
    public func ancestors(of hash: BlockHash?) -> [BlockID] {
        var chain: [BlockID] = []
        var next = hash
        while let current = next, let block = index[current], chain.count < blockCount {
            chain.append(block)
            next = cached[Int(block)]?.parent
        }
        return chain.reversed()
    }

    /// How many new blocks `allocate` could hand out after `reusing` (cached
    /// hits about to be acquired) leave the free set.
    public func allocatableCount(reusing hits: [BlockID]) -> Int {
        freeCount - hits.count(where: { refCounts[Int($0)] == 0 })
    }

    // MARK: Reference counting

    /// Takes a reference on each of `blocks` (cached hits joining a table).
    public mutating func acquire(_ blocks: [BlockID]) {
        for block in blocks {
            precondition(cached[Int(block)] != nil, "only cached blocks are shared; block \(block) has no hash")
            if refCounts[Int(block)] == 0 { evictable.remove(block) }
            refCounts[Int(block)] += 1
        }
    }

    /// A fresh block for writing, with one reference, or nil when every block
    /// is referenced. Evicts the least recently released cached block when no
    /// uncached one is free.
    public mutating func allocate() -> BlockID? {
        let block: BlockID
        if let free = uncachedFree.popLast() {
            block = free
        } else if let victim = evictable.first {
            evictable.remove(victim)
            uncache(victim)
            evictions += 1
            block = victim
        } else {
            return nil
        }
        refCounts[Int(block)] = 1
        return block
    }

    /// Drops one reference from each block of a table. The table's tail is
    /// released first so it is evicted before its head: a chain is only
    /// reusable from its start, so the head is worth more.
    public mutating func release(_ table: [BlockID]) {
        for block in table.reversed() {
            precondition(refCounts[Int(block)] > 0, "block \(block) released more often than acquired")
            refCounts[Int(block)] -= 1
            guard refCounts[Int(block)] == 0 else { continue }
            if cached[Int(block)] != nil { evictable.append(block) } else { uncachedFree.append(block) }
        }
    }

    // MARK: Caching

    /// Makes a fully written block reusable under `hash`. Returns false when
    /// another block already holds that content (two requests computed the
    /// same prefix at once); this one then stays private and is freed as
    /// uncached.
    @discardableResult
    public mutating func commit(_ block: BlockID, hash: BlockHash, parent: BlockHash?, tokens: ArraySlice<TokenID>, publish: Bool = true) -> Bool {
        precondition(refCounts[Int(block)] > 0, "block \(block) is committed but nobody holds it")
        precondition(cached[Int(block)] == nil, "block \(block) is already cached; a cached block is never written again")
        precondition(tokens.count == blockSize, "only full blocks are cached")
        guard index[hash] == nil else { return false }
        cached[Int(block)] = CachedBlock(hash: hash, parent: parent, tokens: Array(tokens))
        index[hash] = block
        pendingEvents.append(.stored(hash: hash, parent: parent))
        if recordsCommits && publish { committed.append(block) }
        return true
    }

    /// Whether `drainCommitted` is wanted (a publisher reads it every step).
    var recordsCommits = false
    private var committed: [BlockID] = []

    /// The blocks cached since the last call that are still cached, with
    /// what names them.
    mutating func drainCommitted() -> [(BlockID, CachedBlock)] {
        defer { committed.removeAll(keepingCapacity: true) }
        return committed.compactMap { block in cached[Int(block)].map { (block, $0) } }
    }

    /// Cache events since the last call, oldest first.
    public mutating func drainEvents() -> [KVCacheEvent] {
        defer { pendingEvents.removeAll(keepingCapacity: true) }
        return pendingEvents
    }

    /// Forgets every cached block nobody references (each announced as
    /// removed); blocks in use stay. Returns how many were dropped.
    public mutating func dropUnreferenced() -> Int {
        var dropped = 0
        while let block = evictable.first {
            evictable.remove(block)
            uncache(block)
            uncachedFree.append(block)
            dropped += 1
        }
        return dropped
    }

    private mutating func uncache(_ block: BlockID) {
        guard let entry = cached[Int(block)] else { return }
        cached[Int(block)] = nil
        index[entry.hash] = nil
        pendingEvents.append(.removed(hash: entry.hash))
    }
}
