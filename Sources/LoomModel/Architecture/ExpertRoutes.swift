import Foundation

/// Which experts each token of a MoE layer goes to, and with what weight:
/// softmax over the router logits, top-k, optionally renormalized (llama.cpp
/// and Hugging Face order: softmax first, then select).
public struct ExpertRoutes: Sendable, Equatable {
    /// For each expert, the batch rows routed to it and their weights.
    public var rowsByExpert: [[Int32]]
    public var weightsByExpert: [[Float]]

    public init(rowsByExpert: [[Int32]], weightsByExpert: [[Float]]) {
        self.rowsByExpert = rowsByExpert
        self.weightsByExpert = weightsByExpert
    }

    public init(logits: UnsafeBufferPointer<Float>, tokens: Int, experts: Int, topK: Int, normalize: Bool) {
        var rows = [[Int32]](repeating: [], count: experts)
        var weights = [[Float]](repeating: [], count: experts)
        var probabilities = [Float](repeating: 0, count: experts)
        for t in 0..<tokens {
            let row = logits[(t * experts)..<((t + 1) * experts)]
            let maxLogit = row.max() ?? 0
            var sum: Float = 0
            for (e, logit) in row.enumerated() {
                probabilities[e] = Float(exp(Double(logit - maxLogit)))
                sum += probabilities[e]
            }
            // Ties go to the lower expert index, as a stable sort would.
            let chosen = probabilities.indices.sorted {
                probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1)
            }.prefix(topK)
            let chosenSum = chosen.reduce(Float(0)) { $0 + probabilities[$1] }
            for e in chosen {
                rows[e].append(Int32(t))
                weights[e].append(normalize ? probabilities[e] / chosenSum : probabilities[e] / sum)
            }
        }
        rowsByExpert = rows
        weightsByExpert = weights
    }
}
