import Foundation
import LoomKernels

extension Transformer {
    /// Pre-norm dense feed-forward into delta: SwiGLU(norm(hidden)).
    func denseFeedForward(_ layer: Int, tokens n: Int) {
        guard case .dense(let gate, let up, let down) = weights.layers[layer].feedForward else {
            preconditionFailure("the plan runs layer \(layer)'s experts as a dense feed-forward")
        }
        feedForwardNorm(layer, tokens: n)
        swiGLU(gate: gate, up: up, down: down, input: scratch.normed, tokens: n, into: scratch.delta)
    }

    private func feedForwardNorm(_ layer: Int, tokens n: Int) {
        let w = weights.layers[layer], d = config.embeddingLength
        forEachToken(n) { i in
            Kernels.rmsNorm(
                scratch.hidden + i * d, weight: w.ffnNorm.values, into: scratch.normed + i * d,
                count: d, eps: config.normEpsilon)
        }
    }

    /// out = down · (silu(gate · x) ⊙ (up · x)) for `tokens` rows of x.
    func swiGLU(
        gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix,
        input: UnsafePointer<Float>, tokens: Int, into out: UnsafeMutablePointer<Float>
    ) {
        let d = config.embeddingLength, ff = gate.rows
        Kernels.matmul(
            [.init(gate, into: scratch.gate, ldy: ff), .init(up, into: scratch.up, ldy: ff)],
            input, ldx: d, tokens: tokens, rounded: scratch.rounded, parallel: parallel)
        forEachToken(tokens) { i in Kernels.swiglu(scratch.gate + i * ff, scratch.up + i * ff, count: ff) }
        Kernels.matmul(down, scratch.gate, ldx: ff, tokens: tokens, into: out, ldy: d, rounded: scratch.rounded, parallel: parallel)
    }

    /// Pre-norm MoE feed-forward into delta: the routes of norm(hidden),
    /// the routed experts' weighted outputs (run by `experts`, in this
    /// process or not), plus the shared expert where there is one.
    func mixtureOfExperts(_ layer: Int, tokens n: Int) throws {
        guard case .experts(let moe) = weights.layers[layer].feedForward else {
            preconditionFailure("the plan runs layer \(layer)'s dense feed-forward as experts")
        }
        feedForwardNorm(layer, tokens: n)
        let c = config, d = c.embeddingLength
        Kernels.matmul(moe.router, scratch.normed, ldx: d, tokens: n, into: scratch.router, ldy: c.expertCount, rounded: scratch.rounded, parallel: parallel)
        let routes = ExpertRoutes(
            logits: UnsafeBufferPointer(start: scratch.router, count: n * c.expertCount),
            tokens: n, experts: c.expertCount, topK: c.expertsUsed, normalize: c.normalizeExpertWeights)
        scratch.delta.update(repeating: 0, count: n * d)
        try experts.run(layer: layer, routes: routes, input: scratch.normed, output: scratch.delta, model: self)
        guard let shared = moe.shared else { return }
        swiGLU(gate: shared.gate, up: shared.up, down: shared.down, input: scratch.normed, tokens: n, into: scratch.expertOut)
        for i in 0..<n {
            var scale: Float = 1
            if let sharedGate = moe.sharedGate {
                sharedGate.row(0, into: scratch.gathered)
                let logit = Kernels.dot(scratch.gathered, scratch.normed + i * d, count: d)
                scale = Float(1 / (1 + exp(-Double(logit))))
            }
            for j in 0..<d { scratch.delta[i * d + j] += scale * scratch.expertOut[i * d + j] }
        }
    }
}
