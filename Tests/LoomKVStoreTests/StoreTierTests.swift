import Foundation
import LoomEngine
import LoomModel
import LoomProtocol
import Testing
@testable import LoomKVStore

@Suite("KV store node: DRAM and disk tiers, pins", .serialized)
struct StoreTierTests {
    let stride = StoreHarness.layout.payloadBytes

    /// Puts `headers` (pool blocks `pages`) and returns what was stored.
    func put(_ harness: StoreHarness, _ headers: [StoredBlockHeader], pages: [Int]) async throws -> Int {
        try await harness.withClient { client in
            try await client.put(Array(zip(headers, pages)).map { ($0, $1) }, from: harness.pool, stride: stride).stored
        }
    }

    func get(_ harness: StoreHarness, _ chain: [StoredBlockHeader], into pages: [Int]) async throws -> Int {
        try await harness.withClient { client in
            try await client.get(chain.map(\.hash.rawValue), into: try harness.target(blocks: pages, immediate: UInt32.random(in: 1...1000)))
        }
    }

    func removedEvents(_ store: KVStoreNode) -> Set<BlockHash> {
        Set((store.drainEvents() ?? []).compactMap { if case .removed(let hash) = $0.change { hash } else { nil } })
    }

    @Test func aBlockReadBackOnceGoesToDiskWhenDRAMNeedsItsSlotAndComesBackFromThere() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let harness = try await StoreHarness.start(slots: 2, disk: dir.path)
        let blocks = try (0..<4).map { try harness.block($0, tokens: [TokenID($0), 1, 2, 3], parent: nil, seed: UInt8($0 + 1)) }
        #expect(try await put(harness, [blocks[0], blocks[1]], pages: [0, 1]) == 2)
        #expect(try await get(harness, [blocks[0]], into: [8]) == 1, "block 0 is read back once")
        _ = removedEvents(harness.store)
        #expect(try await put(harness, [blocks[2], blocks[3]], pages: [2, 3]) == 2)
        let disk = try #require(harness.store.disk)
        #expect(disk.hashes == [blocks[0].hash], "only the block read back went to disk (after-first-reuse)")
        #expect(removedEvents(harness.store) == [blocks[1].hash], "the router hears of the block that left the store, not of the one on disk")

        #expect(try await get(harness, [blocks[0]], into: [12]) == 1)
        #expect(try harness.poolBlock(12) == harness.poolBlock(0), "the bytes came back from disk whole")
        let stats = harness.store.stats
        #expect(stats.diskHitBlocks == 1 && stats.hitBlocks == 1 && stats.diskBlocks == 1)
        await harness.stop()
    }

    @Test func aBlockIsOnDiskFromItsFirstReuseSoACrashKeepsIt() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let harness = try await StoreHarness.start(slots: 8, disk: dir.path)
        let blocks = try (0..<2).map { try harness.block($0, tokens: [TokenID($0), 5, 5, 5], parent: nil, seed: UInt8($0 + 1)) }
        #expect(try await put(harness, blocks, pages: [0, 1]) == 2)
        #expect(try await get(harness, [blocks[0]], into: [8]) == 1)
        let disk = try #require(harness.store.disk)
        for _ in 0..<100 where !disk.contains(blocks[0].hash) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(disk.hashes == [blocks[0].hash], "written at its first reuse, with no eviction and no stop; block 1 was never read")
        #expect(harness.store.index.withLock { $0.leaseCount } == 0, "the read's lease ended after the write")
        await harness.stop()
    }

    /// A put does not read the bytes (the transfer layer's counted write
    /// landed whole); the checksum its writer sent is checked on the way to
    /// disk, so a writer's wrong one never becomes a block on disk.
    @Test func aBlockWhoseBytesDoNotMatchItsChecksumNeverReachesDisk() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let harness = try await StoreHarness.start(slots: 8, disk: dir.path, admission: .all)
        var chain = try harness.chain(2)
        chain[1].checksum ^= 1
        #expect(try await put(harness, chain, pages: [0, 1]) == 2)
        #expect(harness.store.flushToDisk() == 1)
        let disk = try #require(harness.store.disk)
        #expect(disk.hashes == [chain[0].hash])
        #expect(harness.store.stats.diskCorrupt == 1, "counted where operators look")
        await harness.stop()
    }

    @Test func aRunLongerThanDRAMComesFromDiskThroughBounceBuffers() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let harness = try await StoreHarness.start(slots: 2, disk: dir.path, admission: .all)
        let chain = try harness.chain(5)
        for (i, header) in chain.enumerated() { #expect(try await put(harness, [header], pages: [i]) == 1) }
        #expect(harness.store.flushToDisk() == 2, "the last two were still only in DRAM")
        let immediate: UInt32 = 4242
        let landed = try await harness.withClient { client in
            try await client.fetch(chain.map(\.hash.rawValue), into: try harness.target(blocks: [8, 9, 10, 11, 12], immediate: immediate))
        }
        #expect(landed.blocks == 5 && landed.fromDisk >= 3, "\(landed)")
        #expect(landed.writes >= 2 && harness.worker.target.counters.count(immediate) == Int(landed.writes))
        for i in 0..<5 { #expect(try harness.poolBlock(8 + i) == harness.poolBlock(i), "block \(i)") }
        await harness.stop()
    }

    @Test func aPutLargerThanDRAMStoresEveryBlockRoundByRound() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let harness = try await StoreHarness.start(slots: 3, disk: dir.path, admission: .all)
        let chain = try harness.chain(8)
        #expect(try await put(harness, chain, pages: Array(0..<8)) == 8, "three slots, taken and freed (to disk) three times")
        #expect(try await get(harness, chain, into: Array(8..<16)) == 8)
        for i in 0..<8 { #expect(try harness.poolBlock(8 + i) == harness.poolBlock(i), "block \(i)") }
        await harness.stop()
    }

    @Test func aRestartedNodeWithItsDiskDirServesItsBlocksAgain() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let first = try await StoreHarness.start(disk: dir.path, admission: .all)
        let chain = try first.chain(3)
        #expect(try await put(first, chain, pages: [0, 1, 2]) == 3)
        #expect(first.store.flushToDisk() == 3, "a graceful stop writes what the policy admits")
        let original = try (0..<3).map { try first.poolBlock($0) }
        await first.stop()

        let second = try await StoreHarness.start(disk: dir.path, admission: .all)
        let held = second.store.snapshotResettingEvents()
        #expect(Set(held.all) == Set(chain.map(\.hash)), "the registration announces the blocks on disk")
        #expect(Set(held.diskOnly) == Set(held.all), "as held on disk only")
        #expect(try await get(second, chain, into: [5, 6, 7]) == 3)
        #expect(try (5...7).map { try second.poolBlock($0) } == original)
        await second.stop()
    }

    @Test func aCorruptBlockOnDiskIsDroppedAnnouncedAndNeverServed() async throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let harness = try await StoreHarness.start(disk: dir.path, admission: .all)
        let chain = try harness.chain(2)
        #expect(try await put(harness, chain, pages: [0, 1]) == 2)
        _ = harness.store.flushToDisk()
        await harness.stop()

        let file = dir.path + "/" + String(format: "%016llx", chain[1].hash.rawValue) + ".lkvb"
        var contents = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        contents[contents.count - 1] ^= 1
        try Data(contents).write(to: URL(fileURLWithPath: file))

        let restarted = try await StoreHarness.start(disk: dir.path, admission: .all)
        _ = restarted.store.snapshotResettingEvents()
        #expect(try await get(restarted, chain, into: [8, 9]) == 1, "the damaged second block ends the run; the worker computes it")
        #expect(removedEvents(restarted.store) == [chain[1].hash])
        #expect(restarted.store.stats.diskCorrupt == 1 && restarted.store.stats.diskBlocks == 1)
        await restarted.stop()
    }

    @Test func aPinnedBlockOutlivesPutsUntilItsDeadlineAndReadsDoNotExtendIt() async throws {
        let harness = try await StoreHarness.start(slots: 2)
        let blocks = try (0..<4).map { try harness.block($0, tokens: [TokenID($0), 9, 9, 9], parent: nil, seed: UInt8($0 + 1)) }
        #expect(try await put(harness, [blocks[0]], pages: [0]) == 1)
        #expect(harness.store.pin([blocks[0].hash], ttl: .milliseconds(400)) == 1)
        #expect(harness.store.stats.pinnedBlocks == 1)
        for i in 1...2 { #expect(try await put(harness, [blocks[i]], pages: [i]) == 1, "block \(i) takes the one unpinned slot") }
        #expect(try await get(harness, [blocks[0]], into: [8]) == 1, "pinned, it was not evicted")
        #expect(try await get(harness, [blocks[1]], into: [9]) == 0, "block 1 was, to make room for block 2")
        try await Task.sleep(for: .milliseconds(600))
        #expect(harness.store.stats.pinnedBlocks == 0, "the read did not extend the pin")
        #expect(try await put(harness, [blocks[3]], pages: [3]) == 1)
        await harness.stop()
    }
}
