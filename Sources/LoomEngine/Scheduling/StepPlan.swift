import LoomModel

/// What one engine step computes: for each scheduled sequence, the tokens to
/// feed, where they start, the block table to read and write, and whether the
/// step must return logits for it. Plain data; `forwardBatch()` turns it into
/// what the model runs.
public struct StepPlan: Sendable, Equatable {
    public struct Item: Sendable, Equatable {
        public var id: RequestID
        /// The sequence's tokens at positions `start ..< start + tokens.count`;
        /// `start` is also how many tokens it had computed (or found cached).
        public var tokens: [TokenID]
        public var start: Int
        /// The sequence's whole table; it covers every position this step writes.
        public var blockTable: [BlockID]
        /// True when this chunk reaches the end of the sequence's known
        /// tokens, so the step samples the sequence's next token.
        public var needsLogits: Bool
    }

    public var items: [Item] = []
    /// Sequences sent back to the waiting queue this step to free blocks.
    public var preempted: [RequestID] = []

    public init() {}

    public var isEmpty: Bool { items.isEmpty }
    public var tokenCount: Int { items.reduce(0) { $0 + $1.tokens.count } }
    /// The requests whose logits the step returns, in logit-row order;
    /// `StepResult.sampled` follows this order.
    public var logitRequests: [RequestID] { items.filter(\.needsLogits).map(\.id) }

    /// The model input for this plan. Logit rows come out in the order of
    /// `logitRequests`.
    public func forwardBatch() -> ForwardBatch {
        var batch = ForwardBatch()
        for item in items {
            batch.append(
                tokens: item.tokens, startingAt: item.start, blockTable: item.blockTable,
                logits: item.needsLogits ? .last : .none)
        }
        return batch
    }
}

/// What executing a plan produced: one sampled token per entry of the plan's
/// `logitRequests`, in that order.
public struct StepResult: Sendable, Equatable {
    public var sampled: [TokenID]

    public init(sampled: [TokenID]) {
        self.sampled = sampled
    }
}
