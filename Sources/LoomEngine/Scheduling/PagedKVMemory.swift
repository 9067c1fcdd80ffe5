import Foundation
import LoomModel

/// The memory behind a worker's `BlockPool`: every KV block in one
/// page-aligned allocation, so the transfer layer can register the whole pool
/// once and remote prefill workers can write a block with a single one-sided
/// write at `offset(of:)`. The pool decides which block holds what; this
/// type only owns the bytes.
///
/// Not `Sendable`: the engine thread owns it and is the only local writer.
public final class PagedKVMemory {
    public let layout: KVCacheLayout
    public let blockCount: Int
    public let base: UnsafeMutablePointer<UInt16>
    /// Whoever owns borrowed memory (a registered region); nil when this
    /// object allocated `base` and frees it.
    private let owner: AnyObject?

    public init(layout: KVCacheLayout, blockCount: Int) {
        precondition(blockCount > 0, "a KV pool needs at least one block")
        self.layout = layout
        self.blockCount = blockCount
        let bytes = blockCount * layout.bytesPerBlock
        var raw: UnsafeMutableRawPointer?
        // Page alignment is what memory registration (ibv_reg_mr, fi_mr_reg)
        // wants; a failure here means the machine cannot hold the pool.
        let status = posix_memalign(&raw, Int(sysconf(Int32(_SC_PAGESIZE))), bytes)
        precondition(status == 0 && raw != nil, "cannot allocate a KV pool of \(bytes) bytes; lower the block count")
        memset(raw!, 0, bytes)
        base = raw!.bindMemory(to: UInt16.self, capacity: blockCount * layout.blockStride)
        owner = nil
    }

    /// A pool in memory someone else allocated (a region registered with
    /// the transfer layer, so prefill workers can write blocks into it).
    /// `owner` is kept alive as long as this pool, and must keep `memory`
    /// valid that long.
    public init(layout: KVCacheLayout, borrowing memory: UnsafeMutableRawBufferPointer, owner: AnyObject) {
        precondition(memory.count >= layout.bytesPerBlock, "a KV pool needs room for at least one block")
        precondition(Int(bitPattern: memory.baseAddress!) % 64 == 0, "KV memory must be 64-byte aligned")
        self.layout = layout
        self.blockCount = memory.count / layout.bytesPerBlock
        self.base = memory.baseAddress!.bindMemory(to: UInt16.self, capacity: blockCount * layout.blockStride)
        self.owner = owner
    }

    deinit { if owner == nil { free(base) } }

    /// The view a forward pass reads and writes.
    public var memory: KVCacheMemory {
        KVCacheMemory(layout: layout, base: base, blockCount: blockCount)
    }

    public var byteCount: Int { blockCount * layout.bytesPerBlock }

    /// Where a block starts, in bytes from `base`: what a transfer descriptor carries.
    public func offset(of block: BlockID) -> Int {
        precondition(block >= 0 && Int(block) < blockCount, "block \(block) is outside the pool of \(blockCount)")
        return Int(block) * layout.bytesPerBlock
    }
}
