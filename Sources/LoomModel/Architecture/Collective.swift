/// Where the forward pass crosses processes in a tensor-parallel group:
/// each rank computes its shard of a layer's attention and feed-forward,
/// and the partial outputs are summed across ranks before they join the
/// residual. One process is a group of one, and the sum is its own part.
public protocol Collective {
    /// Sums `values` (the rank's partial `delta`, `tokens × embedding`
    /// floats) across the group in place, in a fixed rank order so every
    /// rank ends with bit-identical residuals.
    func allReduce(_ point: SyncPoint, _ values: UnsafeMutableBufferPointer<Float>) throws

    /// The leader calls it before each pass with the batch it is about to
    /// run, which every other rank then runs too.
    func beginStep(_ batch: ForwardBatch) throws

    /// Brings every rank's columns of the logits (`rows` rows of the whole
    /// vocabulary, each rank's own in `TensorShard.vocabulary`) to the
    /// leader, whose rows are then whole.
    func gatherLogits(_ logits: UnsafeMutablePointer<Float>, rows: Int) throws

    /// A pass failed after `beginStep`: the ranks no longer agree on which
    /// message comes next, so the group must not be used again.
    func abandon(_ error: any Error)
}

extension Collective {
    public func beginStep(_ batch: ForwardBatch) throws {}
    public func gatherLogits(_ logits: UnsafeMutablePointer<Float>, rows: Int) throws {}
    public func abandon(_ error: any Error) {}
}

/// The named seams of the forward pass: two all-reduces per layer.
public enum SyncPoint: Hashable, Sendable {
    /// After the attention output projection (`attn_output`), split by its input rows.
    case attentionOutput(layer: Int)
    /// After the feed-forward down projection (`ffn_down`), or the experts' combine.
    case feedForwardOutput(layer: Int)
}

/// The whole model in this process: nothing to sum.
public struct SingleProcess: Collective {
    public init() {}

    public func allReduce(_ point: SyncPoint, _ values: UnsafeMutableBufferPointer<Float>) throws {}
}
