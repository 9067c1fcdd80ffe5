/// One forward step's worth of tokens, from any number of sequences at any
/// positions: prefill chunks and single decode tokens ride together. Plain
/// data, built by whoever schedules the step.
public struct ForwardBatch: Sendable, Equatable {
    public struct Sequence: Sendable, Equatable {
        /// Block ids in the KV memory holding this sequence's positions, in order.
        public var blockTable: [Int32]
        public init(blockTable: [Int32]) { self.blockTable = blockTable }
    }

    public var tokens: [TokenID] = []
    public var positions: [Int32] = []
    /// Index into `sequences` for each token.
    public var sequenceIndex: [Int32] = []
    public var sequences: [Sequence] = []
    /// Indices into `tokens` whose logits the step must return, in order.
    public var logitRows: [Int] = []
    /// Prompt blocks this step completes that a prefill hands on to a
    /// decode worker: a group's leader lists them so that every rank ships
    /// its own heads of them (the leader ships its own through the engine).
    public var exports: [BlockExport] = []

    public init() {}

    public var count: Int { tokens.count }

    /// Adds a sequence's next tokens starting at `position`; returns the
    /// sequence's index in this batch.
    @discardableResult
    public mutating func append(
        tokens newTokens: some Collection<TokenID>, startingAt position: Int,
        blockTable: [Int32], logits: LogitSelection = .last
    ) -> Int {
        let index = sequences.count
        sequences.append(Sequence(blockTable: blockTable))
        let first = tokens.count
        for (offset, token) in newTokens.enumerated() {
            tokens.append(token)
            positions.append(Int32(position + offset))
            sequenceIndex.append(Int32(index))
        }
        switch logits {
        case .none: break
        case .last: if tokens.count > first { logitRows.append(tokens.count - 1) }
        case .all: logitRows.append(contentsOf: first..<tokens.count)
        }
        return index
    }
}

/// Blocks of one prompt to ship after the step: the sequence's blocks
/// `firstBlock ..< firstBlock + blocks.count`, held in pool blocks
/// `blocks`, to `target` (where they go, in bytes that only the ranks'
/// transfer code reads), within `millisecondsLeft` of the step: after
/// that the decode worker may have given the blocks to someone else.
public struct BlockExport: Sendable, Equatable {
    public var firstBlock: Int
    public var blocks: [Int32]
    public var target: [UInt8]
    public var millisecondsLeft: Int

    public init(firstBlock: Int, blocks: [Int32], target: [UInt8], millisecondsLeft: Int) {
        self.firstBlock = firstBlock
        self.blocks = blocks
        self.target = target
        self.millisecondsLeft = millisecondsLeft
    }
}

public enum LogitSelection: Sendable, Equatable {
    case none, last, all
}
