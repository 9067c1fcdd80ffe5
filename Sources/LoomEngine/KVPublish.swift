import LoomModel

/// Where the engine hands every block it makes reusable (full, hashed,
/// cached), for a tier beyond its own pool: a worker publishes them to the
/// KV store. Called on the engine thread right after the step that filled
/// the block, before the next step could reuse its memory; the sink copies
/// what it keeps and must not block.
public protocol KVPublishSink: Sendable {
    func publish(_ block: PublishedBlock, bytes: UnsafeRawBufferPointer)
}

/// What names a published block: its chain hash, its parent's and its tokens.
public struct PublishedBlock: Sendable, Equatable {
    public var hash: BlockHash
    public var parent: BlockHash?
    public var tokens: [TokenID]

    public init(hash: BlockHash, parent: BlockHash?, tokens: [TokenID]) {
        self.hash = hash
        self.parent = parent
        self.tokens = tokens
    }
}

extension EngineLoop {
    /// Publishing as its own step of the loop, after `update` (which commits
    /// full blocks) and before the next `schedule` (which may evict them).
    func publishCommittedBlocks() {
        guard let sink = publishing else { return }
        let size = memory.layout.bytesPerBlock
        for (block, entry) in scheduler.pool.drainCommitted() {
            let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(memory.base) + memory.offset(of: block), count: size)
            sink.publish(PublishedBlock(hash: entry.hash, parent: entry.parent, tokens: entry.tokens), bytes: bytes)
        }
    }
}
