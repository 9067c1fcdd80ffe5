/// The part of a model one rank of a tensor-parallel group computes. Ranges
/// index the whole model's heads, intermediate columns and vocabulary; a
/// rank's attention always holds whole query heads with the KV heads they
/// read, so its slice of attention runs the same kernel as the whole.
public struct TensorShard: Hashable, Sendable, CustomStringConvertible {
    public let rank: Int
    public let size: Int
    public let queryHeads: Range<Int>
    public let kvHeads: Range<Int>
    /// Columns of the dense feed-forward's intermediate dimension.
    public let feedForward: Range<Int>
    /// Columns of every routed expert's intermediate dimension.
    public let expertFeedForward: Range<Int>
    public let sharedFeedForward: Range<Int>
    /// Rows of the output head: this rank's logits.
    public let vocabulary: Range<Int>

    public init(
        rank: Int, size: Int, queryHeads: Range<Int>, kvHeads: Range<Int>, feedForward: Range<Int>,
        expertFeedForward: Range<Int>, sharedFeedForward: Range<Int>, vocabulary: Range<Int>
    ) {
        self.rank = rank
        self.size = size
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.feedForward = feedForward
        self.expertFeedForward = expertFeedForward
        self.sharedFeedForward = sharedFeedForward
        self.vocabulary = vocabulary
    }

    /// The whole model: a group of one.
    public static func whole(_ c: ModelConfig) -> TensorShard {
        TensorShard(
            rank: 0, size: 1, queryHeads: 0..<c.headCount, kvHeads: 0..<c.kvHeadCount,
            feedForward: 0..<c.feedForwardLength, expertFeedForward: 0..<c.expertFeedForwardLength,
            sharedFeedForward: 0..<c.sharedExpertFeedForwardLength, vocabulary: 0..<c.vocabularySize)
    }

    public var isWhole: Bool { size == 1 }

    public var description: String {
        "rank \(rank) of \(size): query heads \(queryHeads.lowerBound)..<\(queryHeads.upperBound), "
            + "KV heads \(kvHeads.lowerBound)..<\(kvHeads.upperBound), "
            + "FFN columns \(feedForward.lowerBound)..<\(feedForward.upperBound), "
            + (expertFeedForward == feedForward ? "" : "expert columns \(expertFeedForward.lowerBound)..<\(expertFeedForward.upperBound), ")
            + (sharedFeedForward.isEmpty ? "" : "shared expert columns \(sharedFeedForward.lowerBound)..<\(sharedFeedForward.upperBound), ")
            + "vocabulary \(vocabulary.lowerBound)..<\(vocabulary.upperBound)"
    }
}

extension ModelConfig {
    /// The shape `shard` computes: its heads and intermediate columns; the
    /// residual width, layers and vocabulary (the logits it returns) are the
    /// whole model's.
    public func sharded(_ shard: TensorShard) -> ModelConfig {
        var c = self
        c.headCount = shard.queryHeads.count
        c.kvHeadCount = shard.kvHeads.count
        c.feedForwardLength = shard.feedForward.count
        c.expertFeedForwardLength = shard.expertFeedForward.count
        c.sharedExpertFeedForwardLength = shard.sharedFeedForward.count
        return c
    }
}
