import LoomEngine
import LoomModel
import Testing
@testable import LoomKVStore

@Suite("KV store: the DRAM tier's index")
struct StoreIndexTests {
    let t0 = ContinuousClock.now
    let lease = Duration.seconds(5)

    func name(_ i: Int) -> BlockHash { BlockHash(rawValue: UInt64(i) &* 0x9E37_79B9_7F4A_7C15) }

    func header(_ i: Int) -> StoredBlockHeader {
        StoredBlockHeader(hash: name(i), parent: nil, modelID: 1, layout: StoredLayout(layers: 1, kvHeads: 1, headDim: 1, blockSize: 1),
                          tokens: [TokenID(i)], checksum: 0)
    }

    func lookup(_ index: inout StoreIndex, _ chain: [BlockHash]) -> StoreIndex.ReadLease? {
        index.lookup(chain, now: t0, lease: lease)
    }

    /// Reserves and commits blocks `ids`, as a writer whose writes landed.
    func put(_ ids: [Int], into index: inout StoreIndex, removed: inout [StoreIndex.Removal]) throws {
        for (id, outcome) in zip(ids, index.reserve(ids.map(name), now: t0, lease: lease, removed: &removed)) {
            guard case .reserved = outcome else { Issue.record("block \(id): \(outcome)"); continue }
            try index.commit(header(id), now: t0)
        }
    }

    @Test func aReservedBlockIsInvisibleUntilCommittedAndASecondWriterWritesNothing() throws {
        var index = StoreIndex(slots: 4)
        var removed: [StoreIndex.Removal] = []
        let first = index.reserve([name(1)], now: t0, lease: lease, removed: &removed)
        #expect(first == [.reserved(slot: 0)])
        #expect(index.lookup([name(1)], now: t0, lease: lease) == nil, "not visible before its commit")
        #expect(index.reserve([name(1)], now: t0, lease: lease, removed: &removed) == [.exists], "a second writer is told it exists")
        try index.commit(header(1), now: t0)
        #expect(index.lookup([name(1)], now: t0, lease: lease)?.blocks.map(\.hash) == [name(1)])
        #expect(throws: StoreError.self, "a second commit has no reservation") { try index.commit(header(1), now: t0) }
    }

    @Test func aLookupLeasesTheLongestLeadingRunOnly() throws {
        var index = StoreIndex(slots: 8)
        var removed: [StoreIndex.Removal] = []
        try put([1, 2, 4], into: &index, removed: &removed)
        let lease = try #require(lookup(&index, [1, 2, 3, 4].map(name)))
        #expect(lease.blocks.map(\.hash) == [name(1), name(2)], "block 3 is missing, so 4 cannot be used")
        #expect(index.lookup([3, 4].map(name), now: t0, lease: self.lease) == nil)
    }

    @Test func anUncommittedReservationIsReclaimedAfterItsLease() {
        var index = StoreIndex(slots: 1)
        var removed: [StoreIndex.Removal] = []
        _ = index.reserve([name(1)], now: t0, lease: lease, removed: &removed)
        #expect(index.reserve([name(2)], now: t0, lease: lease, removed: &removed) == [.full], "a reservation is never evicted")
        #expect(index.expire(now: t0 + .seconds(4)).isEmpty)
        #expect(index.expire(now: t0 + .seconds(5)) == [.reclaimed(name(1))])
        #expect(index.reserve([name(2)], now: t0 + .seconds(5), lease: lease, removed: &removed) == [.reserved(slot: 0)])
        #expect(throws: StoreError.self, "the writer that died cannot commit later") { try index.commit(header(1), now: t0 + .seconds(6)) }
    }

    @Test func leasedAndPinnedBlocksAreNotEvictedAndLeasesEnd() throws {
        var index = StoreIndex(slots: 2)
        var removed: [StoreIndex.Removal] = []
        try put([1, 2], into: &index, removed: &removed)
        let read = try #require(lookup(&index, [name(1)]))
        #expect(index.pin([name(2)], until: t0 + .seconds(60)) == 1)
        #expect(index.reserve([name(3)], now: t0, lease: lease, removed: &removed) == [.full])
        index.endLease(read.id)
        #expect(index.reserve([name(3)], now: t0, lease: lease, removed: &removed) == [.reserved(slot: 0)])
        #expect(removed.compactMap(\.victim).map(\.hash) == [name(1)], "the pinned block stayed")
        #expect(removed.compactMap(\.victim).map(\.reads) == [1])
        try index.commit(header(3), now: t0)
        _ = index.lookup([name(3)], now: t0, lease: lease)
        // Reads do not extend a pin. Past its deadline, and with block 3's
        // read lease run out, both can go: 3 first, read least recently.
        _ = index.lookup([name(2)], now: t0 + .seconds(30), lease: lease).map { index.endLease($0.id) }
        #expect(index.reserve([name(4)], now: t0 + .seconds(59), lease: lease, removed: &removed) == [.full], "3 is leased, 2 pinned")
        _ = index.expire(now: t0 + .seconds(61))
        #expect(index.reserve([name(4), name(5)], now: t0 + .seconds(61), lease: lease, removed: &removed) == [.reserved(slot: 0), .reserved(slot: 1)])
        #expect(removed.suffix(2).compactMap(\.victim).map(\.hash) == [name(3), name(2)])
    }

    @Test func aScanOfOneShotBlocksDoesNotPushOutBlocksReadTwice() throws {
        var index = StoreIndex(slots: 10, protectedShare: 0.5)
        var removed: [StoreIndex.Removal] = []
        try put([1, 2, 3], into: &index, removed: &removed)
        for _ in 0..<2 {
            let read = try #require(lookup(&index, [1, 2, 3].map(name)))
            index.endLease(read.id)
        }
        // A long scan: 50 blocks written once, some read once.
        for i in 100..<150 {
            try put([i], into: &index, removed: &removed)
            if i % 3 == 0, let read = index.lookup([name(i)], now: t0, lease: lease) { index.endLease(read.id) }
        }
        for i in 1...3 { #expect(index.entry(name(i))?.isCommitted == true, "block \(i), read twice, survived the scan") }
        #expect(index.committedCount == 10)
        #expect(!removed.compactMap(\.victim).contains { [1, 2, 3].map(name).contains($0.hash) })
    }
}
