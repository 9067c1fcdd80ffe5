/// The geometry of a paged KV cache: fixed-size blocks of token slots, each
/// block one contiguous span holding every layer's keys and values for its
/// tokens (laid out [layer][K, V][slot][kvDim] in IEEE halves).
///
/// One contiguous span per block is what lets a prefill worker ship a whole
/// block to a decode worker as a single one-sided write.
public struct KVCacheLayout: Sendable, Equatable {
    public static let defaultBlockSize = 16

    public let layers: Int
    public let kvDim: Int
    public let blockSize: Int

    public init(layers: Int, kvDim: Int, blockSize: Int = Self.defaultBlockSize) {
        precondition(layers > 0 && kvDim > 0 && blockSize > 0)
        self.layers = layers
        self.kvDim = kvDim
        self.blockSize = blockSize
    }

    public init(config: ModelConfig, blockSize: Int = Self.defaultBlockSize) {
        self.init(layers: config.layerCount, kvDim: config.kvDim, blockSize: blockSize)
    }

    /// Halves per layer within a block (K then V).
    public var layerStride: Int { 2 * blockSize * kvDim }
    /// Halves per block.
    public var blockStride: Int { layers * layerStride }
    public var bytesPerBlock: Int { blockStride * MemoryLayout<UInt16>.size }

    public func blocksNeeded(tokens: Int) -> Int { (tokens + blockSize - 1) / blockSize }
}

/// Memory that holds KV blocks, as the forward pass sees it: a base address
/// and a block count. Whoever owns the memory (a per-sequence cache, the
/// engine's paged pool) hands out this view for the duration of a step.
public struct KVCacheMemory {
    public let layout: KVCacheLayout
    public let base: UnsafeMutablePointer<UInt16>
    public let blockCount: Int

    public init(layout: KVCacheLayout, base: UnsafeMutablePointer<UInt16>, blockCount: Int) {
        self.layout = layout
        self.base = base
        self.blockCount = blockCount
    }
}
