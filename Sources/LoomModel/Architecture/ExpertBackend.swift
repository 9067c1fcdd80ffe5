import LoomKernels

/// Where a MoE layer's experts run. The layer computes the routes; a backend
/// applies each chosen expert to its rows and adds `weight × expert(row)` into
/// `output`. In one process that is `LocalExperts`; expert servers plug in
/// here by sending rows away and adding back what returns.
public protocol ExpertBackend {
    func run(
        layer: Int, routes: ExpertRoutes, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, model: Transformer) throws
}

/// Runs every expert in this process, from the model's own weights.
public struct LocalExperts: ExpertBackend {
    let config: ModelConfig
    let weights: ModelWeights

    public init(config: ModelConfig, weights: ModelWeights) {
        self.config = config
        self.weights = weights
    }

    public func run(
        layer: Int, routes: ExpertRoutes, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, model: Transformer
    ) throws {
        guard case .experts(let moe) = weights.layers[layer].feedForward else { return }
        let d = config.embeddingLength, ff = config.expertFeedForwardLength
        let gathered = model.scratch.gathered, out = model.scratch.expertOut
        for (expert, rows) in routes.rowsByExpert.enumerated() where !rows.isEmpty {
            for (i, row) in rows.enumerated() {
                (gathered + i * d).update(from: input + Int(row) * d, count: d)
            }
            model.swiGLU(
                gate: moe.gate.slice(expert, rows: ff), up: moe.up.slice(expert, rows: ff),
                down: moe.down.slice(expert, rows: d), input: gathered, tokens: rows.count, into: out)
            for (i, row) in rows.enumerated() {
                let weight = routes.weightsByExpert[expert][i]
                let target = output + Int(row) * d
                for j in 0..<d { target[j] += weight * out[i * d + j] }
            }
        }
    }
}
