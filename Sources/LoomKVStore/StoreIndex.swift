import LoomEngine

/// One store node's DRAM tier as plain data: which block lives in which
/// slot of the registered region, in what state, and in what order blocks
/// are evicted. Time comes in as an argument, so every path is tested
/// without a clock or a socket; `KVStoreNode` keeps one behind a lock.
///
/// A block is written in two phases: `reserve` hands out a slot for a
/// block nobody holds, the writer fills it with one-sided writes, and
/// `commit` makes it visible. Until then lookups do not see it, and a
/// reservation left uncommitted past its lease is reclaimed.
///
/// Eviction is a segmented LRU: a block enters on probation, and its
/// second read moves it to the protected segment. A scan of blocks read at
/// most once therefore only churns probation and never pushes out blocks
/// that were reused. Leased, pinned and reserved blocks are never evicted.
public struct StoreIndex: Sendable {
    public struct Entry: Sendable {
        public let slot: Int
        public var header: StoredBlockHeader?
        /// Set while the block is reserved and not yet committed.
        var writeDeadline: ContinuousClock.Instant?
        /// Read leases holding the block, which keep it from eviction.
        var readers = 0
        public var reads = 0
        public var pinnedUntil: ContinuousClock.Instant?

        public var isCommitted: Bool { writeDeadline == nil }
    }

    public enum Reservation: Equatable, Sendable {
        /// Write the block's bytes into this slot, then commit.
        case reserved(slot: Int)
        /// The store holds (or is being given) the block: write nothing.
        case exists
        /// No slot is free and none can be evicted now.
        case full
    }

    /// Blocks a reader may read until it ends the lease or the deadline.
    public struct ReadLease: Equatable, Sendable {
        public let id: UInt64
        public let blocks: [(hash: BlockHash, slot: Int)]

        public static func == (a: Self, b: Self) -> Bool {
            a.id == b.id && a.blocks.map(\.hash) == b.blocks.map(\.hash) && a.blocks.map(\.slot) == b.blocks.map(\.slot)
        }
    }

    /// What left the DRAM tier, for the router's index and the disk tier.
    public enum Removal: Equatable, Sendable {
        case evicted(Resident)
        case reclaimed(BlockHash)

        public var victim: Resident? { if case .evicted(let victim) = self { victim } else { nil } }
    }

    /// A committed block and the slot it is in. One that eviction took out
    /// keeps its bytes in `slot` until whoever the slot was handed to writes
    /// there, so the caller can move them to disk first.
    public struct Resident: Equatable, Sendable {
        public let header: StoredBlockHeader
        public let slot: Int
        public let reads: Int

        public var hash: BlockHash { header.hash }
    }

    public let slotCount: Int
    /// How much of the tier reused blocks may hold (the rest stays for
    /// newcomers on probation).
    public let protectedShare: Double
    private(set) var entries: [BlockHash: Entry] = [:]
    private var bySlot: [BlockHash?]
    private var free: [Int]
    private var recency: SlotLists
    private var leases: [UInt64: (blocks: [BlockHash], deadline: ContinuousClock.Instant)] = [:]
    private var nextLease: UInt64 = 1

    private static let probation = 0, protected = 1

    public init(slots: Int, protectedShare: Double = 0.8) {
        precondition(slots > 0 && (0...1).contains(protectedShare))
        slotCount = slots
        self.protectedShare = protectedShare
        bySlot = Array(repeating: nil, count: slots)
        free = Array((0..<slots).reversed())
        recency = SlotLists(slots: slots, lists: 2)
    }

    public var committedCount: Int { entries.values.count { $0.isCommitted } }
    public var committedHashes: [BlockHash] { entries.filter { $0.value.isCommitted }.map(\.key) }
    public var leaseCount: Int { leases.count }
    /// Every committed block with where it is and how often it was read.
    public var committed: [Resident] {
        entries.values.compactMap { entry in entry.header.map { Resident(header: $0, slot: entry.slot, reads: entry.reads) } }
    }
    public func pinnedCount(now: ContinuousClock.Instant) -> Int { entries.values.count { ($0.pinnedUntil ?? now) > now } }
    public func entry(_ hash: BlockHash) -> Entry? { entries[hash] }

    /// A slot for each block of `hashes` nobody holds yet, evicting as
    /// needed; `removed` collects what eviction took out.
    public mutating func reserve(
        _ hashes: [BlockHash], now: ContinuousClock.Instant, lease: Duration, removed: inout [Removal]
    ) -> [Reservation] {
        hashes.map { hash in
            guard entries[hash] == nil else { return .exists }
            guard let slot = free.popLast() ?? evictOne(now: now, removed: &removed) else { return .full }
            entries[hash] = Entry(slot: slot, header: nil, writeDeadline: now + lease)
            bySlot[slot] = hash
            return .reserved(slot: slot)
        }
    }

    /// Makes a reserved block visible with `header`, which the caller has
    /// verified against the bytes that landed.
    /// `reads` carries a history the block had elsewhere (read back from
    /// disk, it was reused before).
    public mutating func commit(_ header: StoredBlockHeader, now: ContinuousClock.Instant, reads: Int = 0) throws(StoreError) {
        guard var entry = entries[header.hash], entry.writeDeadline != nil else {
            throw StoreError(.staleLease, "block \(header.hash) has no live reservation (committed already, or its lease ran out); reserve it again")
        }
        entry.writeDeadline = nil
        entry.header = header
        entry.reads = reads
        entries[header.hash] = entry
        recency.pushFront(entry.slot, to: Self.probation)
    }

    /// Drops a reservation whose writer gave up.
    public mutating func abandon(_ hash: BlockHash) {
        guard let entry = entries[hash], !entry.isCommitted else { return }
        release(hash, entry)
    }

    /// The longest leading run of `chain` held and committed here, leased
    /// for reading until `now + lease`. Nil when the first block is missing.
    public mutating func lookup(_ chain: [BlockHash], now: ContinuousClock.Instant, lease: Duration) -> ReadLease? {
        var run: [(hash: BlockHash, slot: Int)] = []
        for hash in chain {
            guard let entry = entries[hash], entry.isCommitted else { break }
            run.append((hash, entry.slot))
        }
        guard !run.isEmpty else { return nil }
        for (hash, _) in run { touch(hash) }
        let id = nextLease
        nextLease += 1
        leases[id] = (run.map(\.hash), now + lease)
        return ReadLease(id: id, blocks: run)
    }

    /// Ends a read lease (its writes were counted, or the reader cancelled).
    public mutating func endLease(_ id: UInt64) {
        guard let lease = leases.removeValue(forKey: id) else { return }
        for hash in lease.blocks { entries[hash]?.readers -= 1 }
    }

    /// Keeps `hashes` from eviction until `deadline` (reads do not extend it).
    public mutating func pin(_ hashes: [BlockHash], until deadline: ContinuousClock.Instant) -> Int {
        var pinned = 0
        for hash in hashes where entries[hash]?.isCommitted == true {
            entries[hash]!.pinnedUntil = deadline
            pinned += 1
        }
        return pinned
    }

    /// Reclaims reservations and ends read leases whose time is up.
    public mutating func expire(now: ContinuousClock.Instant) -> [Removal] {
        for (id, lease) in leases where lease.deadline <= now { endLease(id) }
        var removed: [Removal] = []
        for (hash, entry) in entries {
            if let deadline = entry.writeDeadline, deadline <= now {
                release(hash, entry)
                removed.append(.reclaimed(hash))
            }
            if let pin = entry.pinnedUntil, pin <= now { entries[hash]?.pinnedUntil = nil }
        }
        return removed
    }

    /// Counts a read; from a block's second read on it is protected, and
    /// the protected segment's least recent goes back on probation when
    /// the segment is over its share.
    private mutating func touch(_ hash: BlockHash) {
        guard var entry = entries[hash] else { return }
        entry.reads += 1
        entry.readers += 1
        entries[hash] = entry
        recency.pushFront(entry.slot, to: entry.reads >= 2 ? Self.protected : Self.probation)
        let limit = max(1, Int(Double(slotCount) * protectedShare))
        while recency.counts[Self.protected] > limit, let oldest = recency.back(Self.protected) {
            recency.pushFront(oldest, to: Self.probation)
        }
    }

    /// Evicted blocks whose bytes the caller is still moving (to disk):
    /// until `left` says they are gone, a read that misses one should
    /// wait a moment rather than report a miss.
    public private(set) var leaving: Set<BlockHash> = []

    public mutating func left(_ hashes: some Sequence<BlockHash>) {
        leaving.subtract(hashes)
    }

    private mutating func evictOne(now: ContinuousClock.Instant, removed: inout [Removal]) -> Int? {
        for segment in [Self.probation, Self.protected] {
            for slot in recency.fromBack(segment) {
                guard let hash = bySlot[slot], let entry = entries[hash], let header = entry.header, isEvictable(entry, now: now) else { continue }
                release(hash, entry)
                leaving.insert(hash)
                removed.append(.evicted(Resident(header: header, slot: slot, reads: entry.reads)))
                return free.popLast()
            }
        }
        return nil
    }

    private func isEvictable(_ entry: Entry, now: ContinuousClock.Instant) -> Bool {
        entry.isCommitted && entry.readers == 0 && (entry.pinnedUntil.map { $0 <= now } ?? true)
    }

    private mutating func release(_ hash: BlockHash, _ entry: Entry) {
        entries[hash] = nil
        bySlot[entry.slot] = nil
        recency.remove(entry.slot)
        free.append(entry.slot)
    }
}
