import Foundation
import LoomKernels

extension Transformer {
    /// Pre-norm feed-forward: hidden += FFN(norm(hidden)), dense or MoE.
    func feedForwardBlock(_ layer: Int, _ step: StepContext) throws {
        let w = weights.layers[layer], n = step.count, d = config.embeddingLength
        forEachToken(n) { i in
            Kernels.rmsNorm(
                scratch.hidden + i * d, weight: w.ffnNorm.values, into: scratch.normed + i * d,
                count: d, eps: config.normEpsilon)
        }
        switch w.feedForward {
        case .dense(let gate, let up, let down):
            swiGLU(gate: gate, up: up, down: down, input: scratch.normed, tokens: n, into: scratch.delta)
        case .experts(let moe):
            try mixtureOfExperts(layer, moe, tokens: n)
        }
        try collective.allReduce(.feedForwardOutput(layer: layer), UnsafeMutableBufferPointer(start: scratch.delta, count: n * d))
        addResidual(n)
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

    private func mixtureOfExperts(_ layer: Int, _ moe: MoEWeights, tokens n: Int) throws {
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
