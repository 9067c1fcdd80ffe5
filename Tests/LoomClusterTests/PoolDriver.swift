import LoomEngine
import LoomModel
import LoomTesting

/// Drives a real `BlockPool` the way a worker's scheduler does: requests
/// reuse their cached prefix, allocate the rest (evicting when the pool is
/// full), cache each full block and release their table when done. Prompts
/// come from a few families sharing prefixes, so hits and evictions are both
/// common in a small pool.
struct PoolDriver {
    static let blockSize = 4
    let hasher = BlockHasher(modelID: 7, blockSize: PoolDriver.blockSize)
    var pool: BlockPool
    var tables: [[BlockID]] = []
    var random: SeededGenerator
    private(set) var stores = 0
    private(set) var removals = 0

    init(blockCount: Int, seed: UInt64) {
        pool = BlockPool(blockCount: blockCount, blockSize: Self.blockSize)
        random = SeededGenerator(seed: seed)
    }

    /// One random admission or completion.
    mutating func step() {
        if tables.isEmpty || Int.random(in: 0..<3, using: &random) < 2 {
            admit(randomPrompt())
        } else {
            let table = tables.remove(at: Int.random(in: 0..<tables.count, using: &random))
            pool.release(table)
        }
    }

    /// Drains the pool's events, counting them so a test can tell it
    /// exercised both kinds.
    mutating func drain() -> [KVCacheEvent] {
        let events = pool.drainEvents()
        for event in events {
            if case .stored = event { stores += 1 } else { removals += 1 }
        }
        return events
    }

    mutating func randomPrompt() -> [TokenID] {
        let family = TokenID(Int.random(in: 0..<4, using: &random))
        let shared = (0..<Int.random(in: 0...24, using: &random)).map { family * 1000 + TokenID($0) }
        let tail = (0..<Int.random(in: 0...9, using: &random)).map { _ in TokenID(Int.random(in: 500..<504, using: &random)) }
        return shared + tail
    }

    /// Blocks of `tokens` this pool could serve from its cache, by the
    /// pool's own lookup.
    func cachedBlocks(_ tokens: [TokenID]) -> Int {
        let chain = hasher.chain(tokens)
        return pool.cachedPrefix(hashes: chain, tokens: tokens, maxBlocks: chain.count).count
    }

    private mutating func admit(_ tokens: [TokenID]) {
        let chain = hasher.chain(tokens)
        let hits = pool.cachedPrefix(hashes: chain, tokens: tokens, maxBlocks: chain.count)
        let blocks = (tokens.count + Self.blockSize - 1) / Self.blockSize
        guard blocks > 0, pool.allocatableCount(reusing: hits) >= blocks - hits.count else { return }
        pool.acquire(hits)
        var table = hits
        for index in hits.count..<blocks {
            let block = pool.allocate()!
            table.append(block)
            guard index < chain.count else { continue }
            let tokens = tokens[index * Self.blockSize..<(index + 1) * Self.blockSize]
            pool.commit(block, hash: chain[index], parent: index == 0 ? nil : chain[index - 1], tokens: tokens)
        }
        tables.append(table)
    }
}
