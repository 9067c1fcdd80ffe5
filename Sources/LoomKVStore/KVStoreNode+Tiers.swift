import LoomEngine
import LoomProtocol

/// Moving blocks between DRAM and disk. DRAM is where blocks are written
/// and pushed from; disk takes what DRAM lets go of (as the admission
/// policy allows) and gives blocks back into DRAM slots when a lookup
/// reaches them. The router hears of a block leaving only when it has left
/// both tiers.
extension KVStoreNode {
    /// Leases the longest leading run of `chain` held in either tier,
    /// reading disk-only blocks back into DRAM on the way; each block is
    /// counted as a hit of the tier it was in when looked up.
    func leaseRun(_ chain: [BlockHash]) -> (leases: [StoreIndex.ReadLease], fromDRAM: Int, fromDisk: Int) {
        var leases: [StoreIndex.ReadLease] = []
        var position = 0, fromDRAM = 0, fromDisk = 0
        while position < chain.count {
            if let lease = index.withLock({ $0.lookup(Array(chain[position...]), now: .now, lease: configuration.lease) }) {
                leases.append(lease)
                position += lease.blocks.count
                fromDRAM += lease.blocks.count
                continue
            }
            let promoted = promote(chain[position...])
            guard promoted > 0,
                  let lease = index.withLock({ $0.lookup(Array(chain[position..<position + promoted]), now: .now, lease: configuration.lease) })
            else { break }
            leases.append(lease)
            position += lease.blocks.count
            fromDisk += lease.blocks.count
            // Evicted again before it could be leased: the run ends here.
            guard lease.blocks.count == promoted else { break }
        }
        return (leases, fromDRAM, fromDisk)
    }

    /// Reads the leading blocks of `chain` that are on disk and in no DRAM
    /// slot back into DRAM; returns how many were committed there. A block
    /// that fails its checks on the way is dropped and announced removed.
    private func promote(_ chain: ArraySlice<BlockHash>) -> Int {
        guard let disk else { return 0 }
        let wanted = index.withLock { index in Array(chain.prefix { index.entry($0) == nil && disk.contains($0) }.prefix(64)) }
        guard !wanted.isEmpty else { return 0 }
        var removed: [StoreIndex.Removal] = []
        let outcomes = index.withLock { $0.reserve(wanted, now: .now, lease: configuration.lease, removed: &removed) }
        demote(removed)
        var committed = 0, failed = false
        for (hash, outcome) in zip(wanted, outcomes) {
            guard case .reserved(let slot) = outcome else {
                failed = true
                continue
            }
            // Past a block that did not come back, the rest is no use.
            guard !failed else {
                index.withLock { $0.abandon(hash) }
                continue
            }
            do throws(StoreError) {
                let header = try disk.read(hash, into: slotBuffer(slot))
                try index.withLock { index throws(StoreError) in try index.commit(header, now: .now, reads: 1) }
                committed += 1
            } catch {
                failed = true
                index.withLock { index in
                    index.abandon(hash)
                    if !disk.contains(hash) { record([.removed(hash: hash)]) }
                }
            }
        }
        return committed
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
        for victim in victims {
            if let disk, configuration.admission.admits(reads: victim.reads) {
                gone += disk.write(victim.header, payload: UnsafeRawBufferPointer(slotBuffer(victim.slot)))
            }
            if disk?.contains(victim.hash) != true { gone.append(victim.hash) }
        }
        index.withLock { index in
            record(gone.filter { index.entry($0) == nil }.map { .removed(hash: $0) })
        }
    }

    /// On a graceful stop: every DRAM block the admission policy takes
    /// goes to disk, so a restart with the same disk dir has it.
    public func flushToDisk() -> Int {
        guard let disk else { return 0 }
        let resident = index.withLock { $0.committed }
        var written = 0
        for block in resident where configuration.admission.admits(reads: block.reads) && !disk.contains(block.hash) {
            _ = disk.write(block.header, payload: UnsafeRawBufferPointer(slotBuffer(block.slot)))
            if disk.contains(block.hash) { written += 1 }
        }
        return written
    }

    /// Pins every block of `chain` held here (in DRAM, or read back from
    /// disk) until now + `ttl`. Not only the leading run: the chain's other
    /// blocks live on other nodes. Returns how many were pinned.
    func pin(_ chain: [BlockHash], ttl: Duration) -> Int {
        var pinned = 0, position = 0
        while position < chain.count {
            let (leases, _, _) = leaseRun(Array(chain[position...]))
            let run = leases.flatMap { $0.blocks.map(\.hash) }
            pinned += index.withLock { index in
                defer { for lease in leases { index.endLease(lease.id) } }
                return index.pin(run, until: .now + ttl)
            }
            position += max(1, run.count)
        }
        return pinned
    }

    func slotBuffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: region.bytes[slot * slotBytes ..< (slot + 1) * slotBytes])
    }
}
