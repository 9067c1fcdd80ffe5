import Testing
import LoomEngine
import LoomModel

private func configuration(
    blocks: Int = 256, budget: Int = 256, maxRunning: Int = 8, maxWaiting: Int = 64, context: Int = 4096
) -> SchedulerConfiguration {
    SchedulerConfiguration(
        blockCount: blocks, tokenBudget: budget, maxRunning: maxRunning, maxWaiting: maxWaiting,
        contextLength: context)
}

private func request(_ id: UInt64, _ prompt: [TokenID], _ maxTokens: Int) -> EngineRequest {
    EngineRequest(id: RequestID(id), prompt: prompt, maxTokens: maxTokens)
}

@Suite struct SchedulerBatchingTests {
    @Test func chunkedPrefillNeverStarvesDecodes() throws {
        var h = try Harness(configuration(budget: 32))
        for id in 1...3 { try h.submit(UInt64(id), prompt: tokens(10, seed: TokenID(id)), maxTokens: 60) }
        h.step()
        #expect(h.scheduler.runningIDs.count == 3)
        try h.submit(4, prompt: tokens(500, seed: 4), maxTokens: 4)
        var prefillSteps = 0
        while h.tokens(4).isEmpty {
            let plan = h.step()
            prefillSteps += 1
            #expect(plan.tokenCount <= 32)
            for id in 1...3 {
                let decode = plan.items.first { $0.id == RequestID(UInt64(id)) }
                #expect(decode?.tokens.count == 1, "decode \(id) missing from step \(prefillSteps)")
            }
            #expect(plan.items.first { $0.id == RequestID(4) }?.tokens.count ?? 0 > 0)
        }
        // 29 of the 32 tokens are left for the prompt after three decodes.
        #expect(prefillSteps == (500 + 28) / 29)
        #expect(h.items(4).map(\.tokens.count).reduce(0, +) == 500)
        #expect(h.tokens(1).count == 1 + prefillSteps, "each decode advanced once per step")
        h.runUntilIdle()
        for id in 1...4 {
            #expect(h.tokens(UInt64(id)) == h.reference(UInt64(id)))
            #expect(h.finishes(UInt64(id)).map(\.0) == [.length])
        }
    }
}

@Suite struct SchedulerPrefixCacheTests {
    @Test func aSharedPrefixIsComputedOnceAndOnlyFullBlocksAreShared() throws {
        var h = try Harness(configuration())
        let prefix = tokens(40, seed: 1)
        try h.submit(1, prompt: prefix, maxTokens: 30)
        h.step()
        try h.submit(2, prompt: prefix + tokens(10, seed: 2), maxTokens: 5)
        let plan = h.step()
        let first = try #require(plan.items.first { $0.id == RequestID(2) })
        // Two full blocks (32 tokens) come from the cache; the 8 tokens of
        // the partial third block are computed again with the 10-token tail.
        #expect(first.start == 32 && first.tokens.count == 18)
        let tables = h.scheduler.blockTables
        let a = try #require(tables[RequestID(1)]), b = try #require(tables[RequestID(2)])
        #expect(Array(a.prefix(2)) == Array(b.prefix(2)))
        #expect(a[2] != b[2], "a partial block is never shared")
        #expect(h.scheduler.pool.refCount(a[0]) == 2 && h.scheduler.pool.refCount(a[2]) == 1)
        h.runUntilIdle()
        #expect(h.items(2).map(\.tokens.count).reduce(0, +) == 18 + 4, "prefill tail plus four decodes")
        #expect(h.finishes(2).map(\.1.cachedPromptTokens) == [32])
        #expect(h.scheduler.stats.prefixHitTokens == 32)
        #expect(h.scheduler.stats.prefixQueriedTokens == 90)
        #expect(h.tokens(1) == h.reference(1) && h.tokens(2) == h.reference(2))
        #expect(h.model.violations.isEmpty)
    }

    @Test func twoAPIKeysNeverShareBlocksAndOneKeySharesWithItself() throws {
        var h = try Harness(configuration())
        let alpha = CacheNamespace(apiKey: "alpha"), beta = CacheNamespace(apiKey: "beta")
        let prompt = tokens(40, seed: 1)
        try h.submit(1, prompt: prompt, maxTokens: 2, namespace: alpha)
        h.runUntilIdle()
        try h.submit(2, prompt: prompt, maxTokens: 2, namespace: beta)
        h.runUntilIdle()
        try h.submit(3, prompt: prompt, maxTokens: 2)
        h.runUntilIdle()
        try h.submit(4, prompt: prompt, maxTokens: 2, namespace: alpha)
        h.runUntilIdle()
        #expect(h.finishes(2).map(\.1.cachedPromptTokens) == [0], "beta does not see alpha's blocks")
        #expect(h.finishes(3).map(\.1.cachedPromptTokens) == [0], "nor does the shared namespace")
        #expect(h.finishes(4).map(\.1.cachedPromptTokens) == [32], "alpha sees its own")
        #expect(h.tokens(2) == h.reference(2) && h.tokens(4) == h.reference(4))
    }

    @Test func aFullyCachedPromptStillComputesItsLastBlock() throws {
        var h = try Harness(configuration())
        try h.submit(1, prompt: tokens(32, seed: 1), maxTokens: 1)
        h.runUntilIdle()
        try h.submit(2, prompt: tokens(32, seed: 1), maxTokens: 1)
        let plan = h.step()
        // The last token's logits are needed, and its block cannot be the
        // cached one because a cached block is never written again.
        #expect(plan.items.map(\.start) == [16])
        #expect(plan.items.map(\.tokens.count) == [16])
        #expect(h.tokens(2) == h.tokens(1))
        #expect(h.model.violations.isEmpty)
    }

    @Test func generatedTokensFillCachedBlocksToo() throws {
        var h = try Harness(configuration())
        try h.submit(1, prompt: tokens(10, seed: 1), maxTokens: 30)
        h.runUntilIdle()
        // 10 prompt + 30 generated = 40 tokens, 39 with KV: two full blocks.
        let stored = h.cacheEvents.filter { if case .stored = $0 { true } else { false } }
        #expect(stored.count == 2)
        try h.submit(2, prompt: tokens(10, seed: 1) + h.tokens(1) + [5], maxTokens: 2)
        let plan = h.step()
        #expect(plan.items.map(\.start) == [32])
    }

    @Test func evictionFollowsReleaseOrderAndEventsMatchThePool() throws {
        var h = try Harness(configuration(blocks: 4))
        let hasher = h.scheduler.configuration.hasher
        let a = tokens(32, seed: 1), b = tokens(32, seed: 2), c = tokens(40, seed: 3)
        try h.submit(1, prompt: a, maxTokens: 1)
        h.runUntilIdle()
        try h.submit(2, prompt: b, maxTokens: 1)
        h.runUntilIdle()
        let (ha, hb, hc) = (hasher.chain(a), hasher.chain(b), hasher.chain(c))
        // The router hashes prompts itself; the events must carry the same chain.
        #expect(h.cacheEvents == [
            .stored(hash: ha[0], parent: nil), .stored(hash: ha[1], parent: ha[0]),
            .stored(hash: hb[0], parent: nil), .stored(hash: hb[1], parent: hb[0]),
        ])
        #expect(h.scheduler.pool.cachedHashes == Set(ha + hb))
        // Released tables go tail first, older tables first: A1 A0 B1 B0.
        try h.submit(3, prompt: c, maxTokens: 1)
        h.runUntilIdle()
        let removed = h.cacheEvents.compactMap { if case .removed(let x) = $0 { x } else { nil } }
        #expect(removed == [ha[1], ha[0], hb[1]])
        #expect(h.scheduler.pool.cachedHashes == [hb[0], hc[0], hc[1]])
        #expect(replay(h.cacheEvents) == h.scheduler.pool.cachedHashes)
        // The survivor really serves: B's first block is a hit.
        try h.submit(4, prompt: Array(b.prefix(16)) + tokens(4, seed: 4), maxTokens: 1)
        #expect(h.step().items.map(\.start) == [16])
    }
}

/// The router's view of a worker's cache, rebuilt from its events alone.
func replay(_ events: [KVCacheEvent]) -> Set<BlockHash> {
    var index: Set<BlockHash> = []
    for event in events {
        switch event {
        case .stored(let hash, _): index.insert(hash)
        case .removed(let hash): index.remove(hash)
        }
    }
    return index
}
