import Foundation
import LoomModel

/// Picks tokens from logits. The chain is: penalties, temperature, top-k,
/// top-p, min-p, then a draw (vLLM's order, which OpenAI-style parameters
/// assume). A sampler keeps its buffers and random state between tokens, so
/// one sampler belongs to one sequence.
public struct Sampler {
    public let parameters: SamplingParameters
    private var random: RandomSource
    private var adjusted: [Float]
    private var candidates: [Int32] = []

    public init(parameters: SamplingParameters, vocabularySize: Int) {
        self.parameters = parameters
        self.random = RandomSource(seed: parameters.seed ?? UInt64.random(in: .min ... .max))
        self.adjusted = [Float](repeating: 0, count: vocabularySize)
        candidates.reserveCapacity(vocabularySize)
    }

    /// Advances the random state past `count` samples taken elsewhere (by
    /// a prefill worker, or a worker that failed mid-request), so a seeded
    /// request continues with the draws it would have used in one process.
    public mutating func skip(samples count: Int) {
        guard !parameters.isGreedy else { return }
        for _ in 0..<count { _ = random.unit() }
    }

    /// The next token given the logits and the sequence so far (prompt and
    /// generated tokens, which the penalties look at).
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, history: some Collection<TokenID>) -> TokenID {
        precondition(logits.count == adjusted.count, "logits have \(logits.count) entries; the sampler expects \(adjusted.count)")
        for i in 0..<logits.count { adjusted[i] = logits[i] }
        if parameters.hasPenalties { applyPenalties(history) }
        if parameters.isGreedy { return argmax() }
        return draw()
    }

    private mutating func applyPenalties(_ history: some Collection<TokenID>) {
        let window = parameters.repetitionWindow > 0 ? history.suffix(parameters.repetitionWindow) : history.suffix(history.count)
        var counts: [TokenID: Int] = [:]
        for token in window { counts[token, default: 0] += 1 }
        for (token, count) in counts where Int(token) < adjusted.count {
            var logit = adjusted[Int(token)]
            if parameters.repetitionPenalty != 1 {
                logit = logit <= 0 ? logit * parameters.repetitionPenalty : logit / parameters.repetitionPenalty
            }
            logit -= Float(count) * parameters.frequencyPenalty + parameters.presencePenalty
            adjusted[Int(token)] = logit
        }
    }

    private func argmax() -> TokenID {
        var best = 0
        for i in 1..<adjusted.count where adjusted[i] > adjusted[best] { best = i }
        return TokenID(best)
    }

    private mutating func draw() -> TokenID {
        let inverseT = 1 / parameters.temperature
        let maxLogit = adjusted.max() ?? 0
        // Tokens more than 30 nats below the best carry under 1e-13 of the
        // mass each; leaving them out keeps the sort small without changing
        // any draw that could happen in practice.
        let floor = maxLogit - 30 * parameters.temperature
        candidates.removeAll(keepingCapacity: true)
        for i in 0..<adjusted.count where adjusted[i] >= floor { candidates.append(Int32(i)) }
        candidates.sort { adjusted[Int($0)] > adjusted[Int($1)] }
        if parameters.topK > 0 && candidates.count > parameters.topK {
            candidates.removeLast(candidates.count - parameters.topK)
        }
        var probabilities = candidates.map { Double(exp((adjusted[Int($0)] - maxLogit) * inverseT)) }
        let total = probabilities.reduce(0, +)
        probabilities = probabilities.map { $0 / total }
        var keep = probabilities.count
        if parameters.topP < 1 {
            var sum = 0.0
            for (i, p) in probabilities.enumerated() {
                sum += p
                if sum >= Double(parameters.topP) { keep = i + 1; break }
            }
        }
        if parameters.minP > 0, let top = probabilities.first {
            let threshold = top * Double(parameters.minP)
            keep = min(keep, max(1, probabilities.prefix(keep).prefix { $0 >= threshold }.count))
        }
        let kept = probabilities.prefix(keep)
        var target = Double(random.unit()) * kept.reduce(0, +)
        for (i, p) in kept.enumerated() {
            target -= p
            if target < 0 { return candidates[i] }
        }
        return candidates[keep - 1]
    }
}

/// The log-probabilities of the most likely tokens, from raw logits.
public enum Logprobs {
    public struct Entry: Sendable, Equatable {
        public var token: TokenID
        public var logprob: Float

        public init(token: TokenID, logprob: Float) {
            self.token = token
            self.logprob = logprob
        }
    }

    /// log softmax(logits)[token].
    public static func of(_ token: TokenID, in logits: UnsafeBufferPointer<Float>) -> Float {
        logits[Int(token)] - logSumExp(logits)
    }

    /// The `count` most likely tokens, most likely first.
    public static func top(_ count: Int, in logits: UnsafeBufferPointer<Float>) -> [Entry] {
        guard count > 0 else { return [] }
        let normalizer = logSumExp(logits)
        var best: [Entry] = []
        for i in 0..<logits.count where best.count < count || logits[i] > best[best.count - 1].logprob {
            let entry = Entry(token: TokenID(i), logprob: logits[i])
            let at = best.firstIndex { $0.logprob < entry.logprob } ?? best.count
            best.insert(entry, at: at)
            if best.count > count { best.removeLast() }
        }
        return best.map { Entry(token: $0.token, logprob: $0.logprob - normalizer) }
    }

    static func logSumExp(_ logits: UnsafeBufferPointer<Float>) -> Float {
        let maxLogit = logits.max() ?? 0
        var sum = 0.0
        for logit in logits { sum += exp(Double(logit - maxLogit)) }
        return maxLogit + Float(log(sum))
    }
}
