/// Activation buffers for one forward step, sized once for the largest batch
/// so no step allocates. Owned by one `Transformer`; not shared.
final class ForwardScratch {
    let capacity: Int
    let hidden: UnsafeMutablePointer<Float>     // [T, d] residual stream
    let normed: UnsafeMutablePointer<Float>     // [T, d]
    let q: UnsafeMutablePointer<Float>          // [T, qDim]
    let k: UnsafeMutablePointer<Float>          // [T, kvDim]
    let v: UnsafeMutablePointer<Float>          // [T, kvDim]
    let attention: UnsafeMutablePointer<Float>  // [T, qDim]
    let gate: UnsafeMutablePointer<Float>       // [T, ff]
    let up: UnsafeMutablePointer<Float>         // [T, ff]
    let delta: UnsafeMutablePointer<Float>      // [T, d] block output before the residual add
    let logits: UnsafeMutablePointer<Float>     // [maxLogitRows, vocab]
    let router: UnsafeMutablePointer<Float>     // [T, experts] MoE router logits
    let gathered: UnsafeMutablePointer<Float>   // [T, d] rows routed to one expert
    let expertOut: UnsafeMutablePointer<Float>  // [T, d] that expert's output
    let rounded: UnsafeMutablePointer<Float>    // [T, widest input] activations rounded for a matmul
    let maxLogitRows: Int
    private var owned: [UnsafeMutablePointer<Float>] = []

    init(config c: ModelConfig, capacity: Int, maxLogitRows: Int) {
        self.capacity = capacity
        self.maxLogitRows = maxLogitRows
        let ff = max(c.feedForwardLength, c.expertFeedForwardLength, c.sharedExpertFeedForwardLength)
        var owned: [UnsafeMutablePointer<Float>] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            owned.append(p)
            return p
        }
        hidden = buffer(capacity * c.embeddingLength)
        normed = buffer(capacity * c.embeddingLength)
        q = buffer(capacity * c.qDim)
        k = buffer(capacity * c.kvDim)
        v = buffer(capacity * c.kvDim)
        attention = buffer(capacity * c.qDim)
        gate = buffer(capacity * ff)
        up = buffer(capacity * ff)
        delta = buffer(capacity * c.embeddingLength)
        logits = buffer(maxLogitRows * c.vocabularySize)
        router = buffer(capacity * c.expertCount)
        gathered = buffer(c.isMoE ? capacity * c.embeddingLength : 0)
        expertOut = buffer(c.isMoE ? capacity * c.embeddingLength : 0)
        rounded = buffer(capacity * max(c.embeddingLength, c.qDim, ff) * 33 / 32 + capacity)
        self.owned = owned
    }

    deinit {
        for p in owned { p.deallocate() }
    }
}
