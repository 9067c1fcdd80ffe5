/// The forward pass as a flat list of steps, made once per model from its
/// layers. The steps where it may leave the process are steps of their
/// own: `.allReduce`, where a tensor-parallel group sums its ranks' partial
/// outputs (`Collective`), and `.experts`, where a MoE layer dispatches its
/// rows to the experts they were routed to and combines what comes back
/// (`ExpertBackend`). A deployment changes what stands behind those seams,
/// or the plan, and never the layers' code.
public struct ForwardPlan: Hashable, Sendable {
    public enum Step: Hashable, Sendable {
        /// hidden = the tokens' embedding rows.
        case embed
        /// delta = attention output of the layer (its norm, Q/K/V, RoPE,
        /// storing K and V, attending, the output projection).
        case attention(layer: Int)
        /// delta = the layer's dense SwiGLU feed-forward of norm(hidden).
        case feedForward(layer: Int)
        /// delta = the layer's routed experts (and shared expert) of
        /// norm(hidden): routes computed here, experts run by the backend.
        case experts(layer: Int)
        /// delta summed across the tensor-parallel group.
        case allReduce(SyncPoint)
        /// hidden += delta.
        case residual
        /// Logits of the rows asked for, from the final norm of hidden.
        case logits
    }

    public var steps: [Step]

    public init(steps: [Step]) {
        self.steps = steps
    }

    /// The llama-family pass: per layer, attention then a feed-forward
    /// (dense or experts, as the layer's weights are), each summed across
    /// the group before it joins the residual.
    public init(layers: [LayerWeights]) {
        var steps: [Step] = [.embed]
        for (layer, weights) in layers.enumerated() {
            steps += [.attention(layer: layer), .allReduce(.attentionOutput(layer: layer)), .residual]
            switch weights.feedForward {
            case .dense: steps.append(.feedForward(layer: layer))
            case .experts: steps.append(.experts(layer: layer))
            }
            steps += [.allReduce(.feedForwardOutput(layer: layer)), .residual]
        }
        steps.append(.logits)
        self.init(steps: steps)
    }

    /// The points where a tensor-parallel group meets, in order.
    public var syncPoints: [SyncPoint] {
        steps.compactMap { step in
            guard case .allReduce(let point) = step else { return nil }
            return point
        }
    }
}
