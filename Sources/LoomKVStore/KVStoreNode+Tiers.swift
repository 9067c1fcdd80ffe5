import LoomEngine
import LoomProtocol
import NIOCore

/// The leading run of a chain a lookup found, block by block: where each
/// block's bytes are to be pushed from, and the read leases that keep the
/// DRAM ones in place until the push is done.
struct StoreRun {
    enum Source {
        /// A DRAM slot, leased.
        case slot(Int)
        /// Read from disk into a buffer of its own, because DRAM had no
        /// slot to spare (every one leased by pushes under way).
        case bounce(ByteBuffer)
    }

    var sources: [Source] = []
    var leases: [StoreIndex.ReadLease] = []
    var fromDRAM = 0
    var fromDisk = 0

    var count: Int { sources.count }
}

/// Moving blocks between DRAM and disk. DRAM is where blocks are written
/// and pushed from; disk keeps what the admission policy takes (from a
/// block's first reuse, or when DRAM lets it go) and gives blocks back into
/// DRAM slots when a lookup reaches them. The router hears of a block
/// leaving only when it has left both tiers.
extension KVStoreNode {
    /// Leases the longest leading run of `chain` held in either tier,
    /// reading disk-only blocks back into DRAM on the way (or into bounce
    /// buffers when DRAM is all leased); each block is counted as a hit of
    /// the tier it was in when looked up.
    func leaseRun(_ chain: [BlockHash]) -> StoreRun {
        var run = StoreRun()
        while run.count < chain.count {
            let position = run.count
            if let lease = index.withLock({ $0.lookup(Array(chain[position...]), now: .now, lease: configuration.lease) }) {
                run.leases.append(lease)
                run.sources += lease.blocks.map { .slot($0.slot) }
                run.fromDRAM += lease.blocks.count
                continue
            }
            let (lease, promoted, bounced) = promote(chain[position...])
            if let lease {
                run.leases.append(lease)
                run.sources += lease.blocks.map { .slot($0.slot) }
                run.fromDisk += lease.blocks.count
            }
            // A block that failed its commit ends the run there.
            guard (lease?.blocks.count ?? 0) == promoted else { break }
            run.sources += bounced.map { .bounce($0) }
            run.fromDisk += bounced.count
            guard promoted + bounced.count > 0 else { break }
        }
        return run
    }

    /// Reads the leading blocks of `chain` that are on disk and in no DRAM
    /// slot back: into DRAM slots while there are slots to take (returned
    /// committed and leased, with how many were read into them), the rest
    /// into bounce buffers. A block that fails its checks on the way is
    /// dropped and announced removed, and ends the run.
    private func promote(_ chain: ArraySlice<BlockHash>) -> (lease: StoreIndex.ReadLease?, promoted: Int, bounced: [ByteBuffer]) {
        guard let disk else { return (nil, 0, []) }
        // Blocks in no committed slot: absent from DRAM, or in a slot being
        // filled this moment (another read promoting it), which this read
        // does not wait for.
        let wanted = index.withLock { index in Array(chain.prefix { index.entry($0)?.isCommitted != true && disk.contains($0) }.prefix(64)) }
        guard !wanted.isEmpty else { return (nil, 0, []) }
        var removed: [StoreIndex.Removal] = []
        let outcomes = index.withLock { $0.reserve(wanted, now: .now, lease: configuration.lease, removed: &removed) }
        demote(removed)
        // Only a leading run of slots is any use; later ones are given back.
        let slots = outcomes.prefix { if case .reserved = $0 { true } else { false } }.map { if case .reserved(let slot) = $0 { slot } else { -1 } }
        for (hash, outcome) in zip(wanted, outcomes).dropFirst(slots.count) {
            if case .reserved = outcome { index.withLock { $0.abandon(hash) } }
        }
        var headers: [StoredBlockHeader] = []
        for (i, slot) in slots.enumerated() {
            guard headers.count == i, let header = read(wanted[i], from: disk, into: slotBuffer(slot), reserved: true) else {
                index.withLock { $0.abandon(wanted[i]) }
                continue
            }
            headers.append(header)
        }
        let lease = commitAndLease(headers)
        // Past the slots: bounce buffers, when DRAM had none to give or
        // another read is filling the block's slot (puts never reserve a
        // block the disk holds).
        guard headers.count == slots.count, slots.count < wanted.count else { return (lease, headers.count, []) }
        var bounced: [ByteBuffer] = []
        for hash in wanted.dropFirst(slots.count) {
            var buffer = ByteBuffer(repeating: 0, count: slotBytes)
            guard buffer.withUnsafeMutableReadableBytes({ read(hash, from: disk, into: $0, reserved: false) }) != nil else { break }
            bounced.append(buffer)
        }
        return (lease, headers.count, bounced)
    }

    /// Commits blocks read back into their reserved slots and leases them,
    /// under one lock: a committed block nobody reads is evictable, and
    /// with a small DRAM tier and reads at once, each read's promotions
    /// were evicted by the next before they could be leased.
    private func commitAndLease(_ headers: [StoredBlockHeader]) -> StoreIndex.ReadLease? {
        guard !headers.isEmpty else { return nil }
        return index.withLock { index in
            for header in headers {
                do throws(StoreError) {
                    try index.commit(header, now: .now, reads: 1)
                    record([.stored(hash: header.hash, parent: header.parent)])
                } catch {
                    index.abandon(header.hash)
                }
            }
            return index.lookup(headers.map(\.hash), now: .now, lease: configuration.lease)
        }
    }

    /// One block from disk into `destination` (a slot `reserved` for it, or
    /// a bounce buffer); its header, or nil when it failed its checks,
    /// which dropped it.
    private func read(_ hash: BlockHash, from disk: DiskTier, into destination: UnsafeMutableRawBufferPointer, reserved: Bool) -> StoredBlockHeader? {
        do throws(StoreError) {
            return try disk.read(hash, into: destination)
        } catch {
            index.withLock { index in
                if reserved { index.abandon(hash) }
                if !disk.contains(hash) && index.entry(hash) == nil { record([.removed(hash: hash)]) }
            }
            return nil
        }
    }

    /// After an eviction, before the freed slots are written: writes the
    /// victims the admission policy takes to disk, and tells the router of
    /// those that left the store entirely (and of any block the disk tier
    /// dropped to make room).
    func demote(_ removed: [StoreIndex.Removal]) {
        counters.record(removed)
        let victims = removed.compactMap(\.victim)
        guard !victims.isEmpty else { return }
        var gone: [BlockHash] = []
        var moved: [(hash: BlockHash, parent: BlockHash?)] = []
        for victim in victims {
            if let disk, configuration.admission.admits(reads: victim.reads) { save(victim, to: disk) }
            if disk?.contains(victim.hash) == true {
                moved.append((victim.hash, victim.header.parent))
            } else {
                gone.append(victim.hash)
            }
        }
        index.withLock { index in
            index.left(victims.map(\.hash))
            record(moved.filter { index.entry($0.hash) == nil }.map { .stored(hash: $0.hash, parent: $0.parent) }, onDisk: true)
            record(gone.filter { index.entry($0) == nil }.map { .removed(hash: $0) })
        }
    }

    /// Blocks of `chain` evicted from DRAM this moment are on their way to
    /// disk (a put's reservation evicts, then saves its victims); a read
    /// waits the few milliseconds that takes rather than miss them.
    func waitForDemotions(of chain: [BlockHash]) async {
        for _ in 0..<200 {
            guard index.withLock({ index in !index.leaving.isEmpty && chain.contains { index.leaving.contains($0) } }) else { return }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Writes a block from its slot to disk, and tells the router of the
    /// blocks the disk dropped to make room that left the store with it.
    private func save(_ block: StoreIndex.Resident, to disk: DiskTier) {
        let dropped = disk.write(block.header, payload: UnsafeRawBufferPointer(slotBuffer(block.slot)))
        index.withLock { index in record(dropped.filter { index.entry($0) == nil }.map { .removed(hash: $0) }) }
    }

    /// Whether `block` is one the policy keeps on disk and the disk lacks.
    private func isDue(_ block: StoreIndex.Resident, on disk: DiskTier) -> Bool {
        configuration.admission.admits(reads: block.reads) && !disk.contains(block.hash)
    }

    /// After a read: the leased blocks the admission policy takes now
    /// (from their first reuse on) and the disk lacks are written to it
    /// while still leased, so the disk holds what the policy says however
    /// the node stops, a crash included; then the leases end.
    func keepOnDisk(_ leases: [StoreIndex.ReadLease]) async {
        defer { index.withLock { index in for lease in leases { index.endLease(lease.id) } } }
        guard let disk else { return }
        let read = index.withLock { index in
            leases.flatMap(\.blocks).compactMap { block in
                index.entry(block.hash).flatMap { entry in entry.header.map { StoreIndex.Resident(header: $0, slot: block.slot, reads: entry.reads) } }
            }
        }
        for block in read where isDue(block, on: disk) { save(block, to: disk) }
    }

    /// On a graceful stop: every DRAM block the admission policy takes
    /// goes to disk, so a restart with the same disk dir has it.
    public func flushToDisk() -> Int {
        guard let disk else { return 0 }
        let due = index.withLock { $0.committed }.filter { isDue($0, on: disk) }
        for block in due { save(block, to: disk) }
        return due.count { disk.contains($0.hash) }
    }

    /// Pins every block of `chain` held here (in DRAM, or read back from
    /// disk) until now + `ttl`. Not only the leading run: the chain's other
    /// blocks live on other nodes. Returns how many were pinned.
    func pin(_ chain: [BlockHash], ttl: Duration) -> Int {
        var pinned = 0, position = 0
        while position < chain.count {
            let run = leaseRun(Array(chain[position...]))
            pinned += index.withLock { index in
                defer { for lease in run.leases { index.endLease(lease.id) } }
                return index.pin(run.leases.flatMap { $0.blocks.map(\.hash) }, until: .now + ttl)
            }
            position += max(1, run.count)
        }
        return pinned
    }

    func slotBuffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: region.bytes[slot * slotBytes ..< (slot + 1) * slotBytes])
    }
}
