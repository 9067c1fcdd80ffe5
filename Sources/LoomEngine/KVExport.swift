import LoomModel

/// Where a prefill's KV blocks go while the engine computes them: a prefill
/// worker hands them to the decode worker chunk by chunk, so the transfer
/// overlaps the next chunk's compute.
public protocol KVExportSink: Sendable {
    /// Called on the engine thread after a step that completed blocks of
    /// the prompt: `fill` copies `blockCount` blocks, the sequence's blocks
    /// from `firstBlock` on, into the buffer it is given (`blockCount ×
    /// KVCacheLayout.bytesPerBlock` bytes). The one copy out of the pool;
    /// the sink must not block, as the next step waits on it.
    func export(firstBlock: Int, blockCount: Int, fill: (UnsafeMutableRawBufferPointer) -> Void)
}

/// A request's ask to have its prompt's KV exported from block `fromBlock`
/// on (the blocks before it the receiver has cached).
public struct KVExport: Sendable {
    public var fromBlock: Int
    public var sink: any KVExportSink

    public init(fromBlock: Int, sink: any KVExportSink) {
        self.fromBlock = fromBlock
        self.sink = sink
    }
}

/// KV export as its own step of the engine loop: after each step, every
/// exporting sequence in it hands over the blocks that step completed —
/// whole blocks as its prompt's chunks finish, and with the last chunk the
/// block holding the prompt's end. Each block goes out once.
struct KVExports {
    private struct Pending {
        var sink: any KVExportSink
        /// The first block not handed over yet.
        var next: Int
    }

    private var pending: [RequestID: Pending] = [:]

    var isEmpty: Bool { pending.isEmpty }

    mutating func start(_ id: RequestID, _ export: KVExport) {
        pending[id] = Pending(sink: export.sink, next: max(0, export.fromBlock))
    }

    mutating func stop(_ id: RequestID) {
        pending[id] = nil
    }

    /// Must run before the next `schedule()`: a finished sequence's blocks
    /// were released in `update`, and keep their bytes only until then.
    mutating func export(_ plan: StepPlan, from memory: PagedKVMemory) {
        guard !pending.isEmpty else { return }
        let blockSize = memory.layout.blockSize, size = memory.layout.bytesPerBlock
        for item in plan.items {
            guard let state = pending[item.id] else { continue }
            let computed = item.start + item.tokens.count
            let ready = min(item.needsLogits ? (computed + blockSize - 1) / blockSize : computed / blockSize, item.blockTable.count)
            if item.needsLogits { pending[item.id] = nil } else { pending[item.id]?.next = max(state.next, ready) }
            guard ready > state.next else { continue }
            let blocks = item.blockTable[state.next..<ready]
            state.sink.export(firstBlock: state.next, blockCount: blocks.count) { out in
                precondition(out.count >= blocks.count * size, "a KV export buffer holds every block it is given")
                for (i, block) in blocks.enumerated() {
                    (out.baseAddress! + i * size).copyMemory(from: UnsafeRawPointer(memory.base) + memory.offset(of: block), byteCount: size)
                }
            }
        }
    }
}
