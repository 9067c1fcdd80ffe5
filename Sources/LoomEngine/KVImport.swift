import LoomModel

/// Fills the pool block it is given with the bytes of the `i`th block of
/// an import (from a region the KV store pushed them into).
public typealias KVImportFill = @Sendable (_ index: Int, _ into: UnsafeMutableRawBufferPointer) -> Void

extension InferenceEngine {
    /// How many leading full blocks of `prompt` the pool holds now: the
    /// ones a request for it would not compute.
    public func cachedPrefixBlocks(of prompt: [TokenID], in namespace: CacheNamespace? = nil) async -> Int {
        await withCheckedContinuation { reply in send(.cachedPrefix(prompt, namespace, reply)) }
    }

    /// Drops every cached block no request is using (`loomctl cache clear
    /// --workers`); returns how many. The router hears of each as removed.
    public func dropCachedBlocks() async -> Int {
        await withCheckedContinuation { reply in send(.dropCachedBlocks(reply)) }
    }

    /// Caches `blocks` (a chain, in order, continuing what the pool holds)
    /// as if they had been computed here, their bytes from `fill`. Returns
    /// how many of them the pool holds afterwards, counted from the first:
    /// an import stops where the pool has no block to spare. Imported
    /// blocks are not published again.
    public func importBlocks(_ blocks: [PublishedBlock], fill: @escaping KVImportFill) async -> Int {
        guard !blocks.isEmpty else { return 0 }
        return await withCheckedContinuation { reply in send(.importBlocks(blocks, fill, reply)) }
    }
}

extension EngineLoop {
    func cachedPrefix(of prompt: [TokenID], in namespace: CacheNamespace?) -> Int {
        let hashes = scheduler.configuration.hasher.chain(prompt, in: namespace)
        return scheduler.pool.cachedPrefix(hashes: hashes, tokens: prompt, maxBlocks: hashes.count, in: namespace).count
    }

    /// Each block into a fresh pool block, then cached under its hash. The
    /// new blocks are held until all are in, so making room for a later
    /// one never evicts an earlier one of the same chain, nor its head.
    func importBlocks(_ blocks: [PublishedBlock], fill: KVImportFill) -> Int {
        // The cached blocks the chain continues are held too: room for the
        // new ones must never be made by evicting the head they extend.
        let head = scheduler.pool.ancestors(of: blocks[0].parent)
        scheduler.pool.acquire(head)
        var held: [BlockID] = []
        var imported = 0
        defer { scheduler.pool.release(head + held) }
        for (i, block) in blocks.enumerated() {
            if scheduler.pool.block(for: block.hash) != nil {
                imported += 1
                continue
            }
            guard let fresh = scheduler.pool.allocate() else { break }
            held.append(fresh)
            let destination = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(memory.base) + memory.offset(of: fresh), count: memory.layout.bytesPerBlock)
            fill(i, destination)
            guard scheduler.pool.commit(fresh, hash: block.hash, parent: block.parent, tokens: block.tokens[...], publish: false) else { break }
            imported += 1
        }
        return imported
    }
}
