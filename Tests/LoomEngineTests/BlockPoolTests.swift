import Testing
import LoomEngine
import LoomModel

private let hasher = BlockHasher(modelID: 1)

/// Allocates a block and caches it as the first block of `tokens`.
private func cacheBlock(_ pool: inout BlockPool, _ tokens: [TokenID], parent: BlockHash? = nil) -> (BlockID, BlockHash) {
    let block = pool.allocate()!
    let hash = hasher.hash(parent: parent, tokens: tokens)
    let committed = pool.commit(block, hash: hash, parent: parent, tokens: tokens[...])
    #expect(committed)
    return (block, hash)
}

@Suite struct BlockPoolTests {
    @Test func countsAddUpAndReleaseFreesUncachedBlocks() {
        var pool = BlockPool(blockCount: 4)
        let a = pool.allocate()!, b = pool.allocate()!
        #expect(pool.usedCount == 2 && pool.freeCount == 2)
        #expect(pool.refCount(a) == 1 && pool.refCount(b) == 1)
        pool.release([a, b])
        #expect(pool.usedCount == 0 && pool.freeCount == 4)
        #expect(pool.evictionOrder.isEmpty, "uncached blocks are not in the eviction list")
        #expect(pool.drainEvents().isEmpty)
    }

    @Test func allocationFailsOnlyWhenEveryBlockIsReferenced() {
        var pool = BlockPool(blockCount: 2)
        let a = pool.allocate()!
        _ = pool.allocate()!
        #expect(pool.allocate() == nil)
        pool.release([a])
        #expect(pool.allocate() == a)
    }

    @Test func aReleasedCachedBlockKeepsItsHashUntilReused() {
        var pool = BlockPool(blockCount: 2)
        let (block, hash) = cacheBlock(&pool, tokens(16, seed: 1))
        #expect(pool.drainEvents() == [.stored(hash: hash, parent: nil)])
        pool.release([block])
        #expect(pool.block(for: hash) == block)
        #expect(pool.hash(of: block) == hash)
        // The uncached free block goes first; the cached one survives it.
        let other = pool.allocate()!
        #expect(other != block && pool.hash(of: block) == hash)
        #expect(pool.drainEvents().isEmpty)
        #expect(pool.allocate() == block)
        #expect(pool.hash(of: block) == nil && pool.block(for: hash) == nil)
        #expect(pool.drainEvents() == [.removed(hash: hash)])
    }

    @Test func evictionIsLeastRecentlyReleasedTailFirst() {
        var pool = BlockPool(blockCount: 4)
        let (a0, h0) = cacheBlock(&pool, tokens(16, seed: 1))
        let (a1, h1) = cacheBlock(&pool, tokens(16, seed: 2), parent: h0)
        let (b0, h2) = cacheBlock(&pool, tokens(16, seed: 3))
        let (c0, h3) = cacheBlock(&pool, tokens(16, seed: 4))
        _ = pool.drainEvents()
        pool.release([b0])
        pool.release([a0, a1])
        pool.release([c0])
        // b released first; within a's table its tail goes before its head.
        #expect(pool.evictionOrder == [b0, a1, a0, c0])
        // Reusing a0 as a prefix hit takes it out of the eviction order.
        pool.acquire([a0])
        #expect(pool.evictionOrder == [b0, a1, c0])
        var evicted: [KVCacheEvent] = []
        for _ in 0..<3 {
            _ = pool.allocate()!
            evicted += pool.drainEvents()
        }
        #expect(evicted == [.removed(hash: h2), .removed(hash: h1), .removed(hash: h3)])
        #expect(pool.cachedHashes == [h0])
        #expect(pool.allocate() == nil)
    }

    @Test func sharedBlocksAreCountedPerHolder() {
        var pool = BlockPool(blockCount: 2)
        let (block, _) = cacheBlock(&pool, tokens(16, seed: 1))
        pool.acquire([block])
        #expect(pool.refCount(block) == 2)
        pool.release([block])
        #expect(pool.refCount(block) == 1 && pool.usedCount == 1)
        pool.release([block])
        #expect(pool.usedCount == 0 && pool.evictionOrder == [block])
        #expect(pool.allocatableCount(reusing: [block]) == 1, "reusing the evictable hit takes it out of the free set")
    }

    @Test func lookupVerifiesTokensAndParentsNotJustHashes() {
        var pool = BlockPool(blockCount: 4)
        let prompt = tokens(32, seed: 1)
        let chain = hasher.chain(prompt)
        let (b0, _) = cacheBlock(&pool, Array(prompt[0..<16]))
        let b1 = pool.allocate()!
        pool.commit(b1, hash: chain[1], parent: chain[0], tokens: prompt[16..<32])
        #expect(pool.cachedPrefix(hashes: chain, tokens: prompt, maxBlocks: 2) == [b0, b1])
        #expect(pool.cachedPrefix(hashes: chain, tokens: prompt, maxBlocks: 1) == [b0])
        // A colliding hash with other tokens behind it is a miss, not a hit.
        var forged = prompt
        forged[20] = -1
        #expect(pool.cachedPrefix(hashes: chain, tokens: forged, maxBlocks: 2) == [b0])
    }

    @Test func aDuplicateCommitLeavesTheSecondBlockPrivate() {
        var pool = BlockPool(blockCount: 2)
        let content = tokens(16, seed: 1)
        let (first, hash) = cacheBlock(&pool, content)
        let second = pool.allocate()!
        let committed = pool.commit(second, hash: hash, parent: nil, tokens: content[...])
        #expect(!committed)
        #expect(pool.block(for: hash) == first && pool.hash(of: second) == nil)
        #expect(pool.drainEvents() == [.stored(hash: hash, parent: nil)])
    }
}
