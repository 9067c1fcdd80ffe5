import LoomModel

/// The KV cache of one sequence: a `PagedKVMemory` with enough blocks for
/// `capacity` tokens, used in order. `loom generate` runs on it; the serving
/// engine shares one pool among sequences through the same `KVCacheMemory` view.
public final class SequenceKVCache {
    public let capacity: Int
    public let blockTable: [Int32]
    private let storage: PagedKVMemory

    public init(layout: KVCacheLayout, capacity: Int) {
        precondition(capacity > 0, "a KV cache needs room for at least one token")
        let blocks = layout.blocksNeeded(tokens: capacity)
        self.capacity = blocks * layout.blockSize
        self.blockTable = (0..<blocks).map(Int32.init)
        storage = PagedKVMemory(layout: layout, blockCount: blocks)
    }

    public var layout: KVCacheLayout { storage.layout }
    public var memory: KVCacheMemory { storage.memory }
}
