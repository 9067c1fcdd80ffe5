import LoomCluster
import LoomEngine
import Testing

private let w0 = WorkerID("decode-0")
private let w1 = WorkerID("decode-1")

private func hash(_ value: UInt64) -> BlockHash { BlockHash(rawValue: value) }

@Suite struct PrefixIndexTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func replayingAPoolsEventsMirrorsItsCacheAfterEveryStep(seed: UInt64) {
        var driver = PoolDriver(blockCount: 12, seed: seed)
        var index = PrefixIndex()
        for _ in 0..<400 {
            driver.step()
            index.apply(driver.drain(), from: w0)
            #expect(index.hashes(of: w0) == driver.pool.cachedHashes)
            #expect(index.entryCount == driver.pool.cachedBlockCount)
            let probe = driver.randomPrompt()
            #expect(index.cachedBlocks(driver.hasher.chain(probe), on: w0) == driver.cachedBlocks(probe))
        }
        // Without both kinds of event the mirror above proves little.
        #expect(driver.stores > 50 && driver.removals > 20)
    }

    @Test func twoWorkersAreIndexedApart() {
        var a = PoolDriver(blockCount: 10, seed: 11), b = PoolDriver(blockCount: 16, seed: 12)
        var index = PrefixIndex()
        for _ in 0..<300 {
            a.step(); b.step()
            index.apply(a.drain(), from: w0)
            index.apply(b.drain(), from: w1)
            #expect(index.hashes(of: w0) == a.pool.cachedHashes)
            #expect(index.hashes(of: w1) == b.pool.cachedHashes)
            #expect(index.distinctBlocks == a.pool.cachedHashes.union(b.pool.cachedHashes).count)
            #expect(index.entryCount == a.pool.cachedBlockCount + b.pool.cachedBlockCount)
        }
        index.remove(w0)
        #expect(index.hashes(of: w0).isEmpty)
        #expect(index.hashes(of: w1) == b.pool.cachedHashes)
        #expect(index.entryCount == b.pool.cachedBlockCount)
    }

    @Test func aRestartedRouterCatchesUpFromASnapshot() {
        var driver = PoolDriver(blockCount: 12, seed: 5)
        var before = PrefixIndex()
        for _ in 0..<100 {
            driver.step()
            before.apply(driver.drain(), from: w0)
        }
        // Events emitted while no router listened are lost for good.
        for _ in 0..<50 { driver.step() }
        _ = driver.drain()
        #expect(before.hashes(of: w0) != driver.pool.cachedHashes)

        var after = PrefixIndex()
        after.apply([.stored(hash: hash(0xDEAD), parent: nil)], from: w0)
        after.replace(w0, with: driver.pool.cachedHashes)
        #expect(after.hashes(of: w0) == driver.pool.cachedHashes, "the snapshot drops what it does not list")
        for _ in 0..<100 {
            driver.step()
            after.apply(driver.drain(), from: w0)
            #expect(after.hashes(of: w0) == driver.pool.cachedHashes)
        }
    }

    @Test func aRemovalBeforeAnyStoreIsIgnored() {
        var index = PrefixIndex()
        index.apply([.stored(hash: hash(1), parent: nil)], from: w1)
        index.apply([.removed(hash: hash(1)), .removed(hash: hash(2))], from: w0)
        #expect(index.entryCount == 1)
        #expect(index.holders(of: hash(1)) == [w1], "another worker's removal leaves w1's copy")
        index.apply([.stored(hash: hash(1), parent: nil)], from: w0)
        #expect(index.holders(of: hash(1)) == [w0, w1])
    }

    @Test func redeliveredEventsChangeNothing() {
        let events: [KVCacheEvent] = [
            .stored(hash: hash(1), parent: nil), .stored(hash: hash(2), parent: hash(1)),
            .stored(hash: hash(3), parent: hash(2)), .removed(hash: hash(3)),
        ]
        var once = PrefixIndex(), twice = PrefixIndex()
        once.apply(events, from: w0)
        twice.apply(events, from: w0)
        twice.apply(events, from: w0)
        #expect(once.hashes(of: w0) == [hash(1), hash(2)])
        #expect(twice.hashes(of: w0) == once.hashes(of: w0))
        #expect(twice.entryCount == 2 && twice.distinctBlocks == 2)
    }

    @Test func aChainIsUsableOnlyUpToItsFirstHole() {
        var index = PrefixIndex()
        index.replace(w0, with: [hash(1), hash(3), hash(4)])
        #expect(index.cachedBlocks([hash(1), hash(2), hash(3), hash(4)], on: w0) == 1)
        #expect(index.cachedBlocks([hash(2), hash(3)], on: w0) == 0)
        #expect(index.cachedBlocks([hash(3), hash(4)], on: w0) == 2)
        #expect(index.cachedBlocks([hash(1)], on: w1) == 0)
        #expect(index.cachedBlocks([], on: w0) == 0)
    }

    @Test func hitRateIsHitBlocksOverLookedUpBlocks() {
        var index = PrefixIndex()
        #expect(index.hitRate == 0)
        index.recordLookup(promptBlocks: 0, hitBlocks: 0)
        #expect(index.hitRate == 0)
        index.recordLookup(promptBlocks: 10, hitBlocks: 2)
        index.recordLookup(promptBlocks: 6, hitBlocks: 6)
        #expect(index.hitRate == 0.5)
    }
}
