import LoomModel

/// The KV cache of one sequence: enough blocks for `capacity` tokens in one
/// allocation, used in order. `loom generate` runs on it; the serving engine
/// replaces it with a shared paged pool, through the same `KVCacheMemory` view.
public final class SequenceKVCache {
    public let layout: KVCacheLayout
    public let capacity: Int
    public let blockTable: [Int32]
    private let base: UnsafeMutablePointer<UInt16>

    public init(layout: KVCacheLayout, capacity: Int) {
        precondition(capacity > 0, "a KV cache needs room for at least one token")
        let blocks = layout.blocksNeeded(tokens: capacity)
        self.layout = layout
        self.capacity = blocks * layout.blockSize
        self.blockTable = (0..<blocks).map(Int32.init)
        base = .allocate(capacity: blocks * layout.blockStride)
        base.initialize(repeating: 0, count: blocks * layout.blockStride)
    }

    deinit { base.deallocate() }

    public var memory: KVCacheMemory {
        KVCacheMemory(layout: layout, base: base, blockCount: blockTable.count)
    }
}
