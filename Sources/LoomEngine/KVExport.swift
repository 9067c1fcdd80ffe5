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
    /// Set on a tensor-parallel group's leader: where the other ranks send
    /// their heads of each block (see `ForwardBatch.exports`), and until when.
    public var forRanks: (target: [UInt8], deadline: ContinuousClock.Instant)?

    public init(fromBlock: Int, sink: any KVExportSink, forRanks: (target: [UInt8], deadline: ContinuousClock.Instant)? = nil) {
        self.fromBlock = fromBlock
        self.sink = sink
        self.forRanks = forRanks
    }
}

/// KV export as its own step of the engine loop: every exporting sequence
/// in a step hands over the blocks that step completes — whole blocks as
/// its prompt's chunks finish, and with the last chunk the block holding
/// the prompt's end. Each block goes out once. Which blocks is known from
/// the plan (`due`, before the pass, so a group's other ranks hear it with
/// the step); their bytes only after it (`export`).
struct KVExports {
    private struct Pending {
        var export: KVExport
        /// The first block not handed over yet.
        var next: Int
    }

    /// Blocks one sequence's step completes.
    struct Due {
        var export: KVExport
        var firstBlock: Int
        var blocks: ArraySlice<Int32>

        var forRanks: BlockExport? {
            export.forRanks.map { ranks in
                let left = ranks.deadline - ContinuousClock.now
                let milliseconds = max(0, Int(left.components.seconds) * 1000 + Int(left.components.attoseconds / 1_000_000_000_000_000))
                return BlockExport(firstBlock: firstBlock, blocks: Array(blocks), target: ranks.target, millisecondsLeft: milliseconds)
            }
        }
    }

    private var pending: [RequestID: Pending] = [:]

    var isEmpty: Bool { pending.isEmpty }

    mutating func start(_ id: RequestID, _ export: KVExport) {
        pending[id] = Pending(export: export, next: max(0, export.fromBlock))
    }

    mutating func stop(_ id: RequestID) {
        pending[id] = nil
    }

    /// The blocks `plan` completes, per exporting sequence; from then on
    /// they count as handed over.
    mutating func due(_ plan: StepPlan, blockSize: Int) -> [Due] {
        guard !pending.isEmpty else { return [] }
        var due: [Due] = []
        for item in plan.items {
            guard let state = pending[item.id] else { continue }
            let computed = item.start + item.tokens.count
            let ready = min(item.needsLogits ? (computed + blockSize - 1) / blockSize : computed / blockSize, item.blockTable.count)
            if item.needsLogits { pending[item.id] = nil } else { pending[item.id]?.next = max(state.next, ready) }
            guard ready > state.next else { continue }
            due.append(Due(export: state.export, firstBlock: state.next, blocks: item.blockTable[state.next..<ready]))
        }
        return due
    }

    /// Copies the blocks out to their sinks. Must run before the next
    /// `schedule()`: a finished sequence's blocks were released in
    /// `update`, and keep their bytes only until then.
    static func export(_ due: [Due], from memory: PagedKVMemory) {
        let size = memory.layout.bytesPerBlock
        for item in due {
            item.export.sink.export(firstBlock: item.firstBlock, blockCount: item.blocks.count) { out in
                precondition(out.count >= item.blocks.count * size, "a KV export buffer holds every block it is given")
                for (i, block) in item.blocks.enumerated() {
                    (out.baseAddress! + i * size).copyMemory(from: UnsafeRawPointer(memory.base) + memory.offset(of: block), byteCount: size)
                }
            }
        }
    }
}
