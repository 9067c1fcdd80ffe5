import Foundation
import Testing
import LoomEngine
import LoomModel

private func sample(_ logits: [Float], _ parameters: SamplingParameters, history: [TokenID] = []) -> TokenID {
    var sampler = Sampler(parameters: parameters, vocabularySize: logits.count)
    return logits.withUnsafeBufferPointer { sampler.sample($0, history: history) }
}

private func draws(_ logits: [Float], _ parameters: SamplingParameters, count: Int) -> [TokenID] {
    var sampler = Sampler(parameters: parameters, vocabularySize: logits.count)
    return logits.withUnsafeBufferPointer { buffer in (0..<count).map { _ in sampler.sample(buffer, history: []) } }
}

@Suite struct SamplerTests {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.0, 2.9]

    @Test func greedyPicksTheLargestLogit() {
        #expect(sample(logits, SamplingParameters()) == 1)
    }

    @Test func seededSamplingIsReproducibleAndSeedsDiffer() {
        let a = draws(logits, SamplingParameters(temperature: 1, seed: 42), count: 50)
        let b = draws(logits, SamplingParameters(temperature: 1, seed: 42), count: 50)
        let c = draws(logits, SamplingParameters(temperature: 1, seed: 43), count: 50)
        #expect(a == b)
        #expect(a != c)
    }

    @Test func topKOneIsGreedy() {
        let picks = draws(logits, SamplingParameters(temperature: 5, topK: 1, seed: 1), count: 40)
        #expect(Set(picks) == [1])
    }

    @Test func topKLimitsTheCandidates() {
        let picks = draws(logits, SamplingParameters(temperature: 10, topK: 3, seed: 7), count: 400)
        #expect(Set(picks) == [1, 5, 2])
    }

    @Test func topPKeepsTheSmallestSetReachingP() {
        // Softmax of the logits: token 1 has 0.37, with 5 0.70, with 2 0.92.
        let picks = draws(logits, SamplingParameters(temperature: 1, topP: 0.8, seed: 3), count: 400)
        #expect(Set(picks) == [1, 5, 2])
        let two = draws(logits, SamplingParameters(temperature: 1, topP: 0.6, seed: 3), count: 200)
        #expect(Set(two) == [1, 5])
        let one = draws(logits, SamplingParameters(temperature: 1, topP: 0.3, seed: 3), count: 50)
        #expect(Set(one) == [1])
    }

    @Test func minPDropsUnlikelyTokens() {
        // exp(2.5 - 3) = 0.61 stays, exp(1 - 3) = 0.14 goes at minP 0.5.
        let picks = draws(logits, SamplingParameters(temperature: 1, minP: 0.5, seed: 5), count: 400)
        #expect(Set(picks) == [1, 5, 2])
    }

    @Test func highTemperatureSpreadsLowTemperatureConcentrates() {
        let hot = draws(logits, SamplingParameters(temperature: 100, seed: 9), count: 600)
        let cold = draws(logits, SamplingParameters(temperature: 0.005, seed: 9), count: 200)
        #expect(Set(hot).count == logits.count)
        #expect(Set(cold) == [1])
    }

    @Test func repetitionPenaltyDemotesSeenTokens() {
        #expect(sample(logits, SamplingParameters(repetitionPenalty: 1.5), history: [1]) == 5)
        // A negative logit is multiplied, pushing it further down, never up.
        #expect(sample([-1, -2], SamplingParameters(repetitionPenalty: 3), history: [0]) == 1)
    }

    @Test func frequencyAndPresencePenaltiesSubtract() {
        #expect(sample(logits, SamplingParameters(frequencyPenalty: 0.05), history: [1, 1, 1]) == 5)
        #expect(sample(logits, SamplingParameters(frequencyPenalty: 0.05), history: [1]) == 1)
        #expect(sample(logits, SamplingParameters(presencePenalty: 0.6), history: [1, 5]) == 2)
    }

    @Test func penaltyWindowForgetsOldTokens() {
        let old: [TokenID] = [1] + [TokenID](repeating: 4, count: 64)
        #expect(sample(logits, SamplingParameters(repetitionPenalty: 2), history: old) == 1)
        #expect(sample(logits, SamplingParameters(repetitionPenalty: 2, repetitionWindow: 0), history: old) == 5)
    }

    @Test func drawsFollowTheDistribution() {
        let picks = draws([0, Float(log(3.0))], SamplingParameters(temperature: 1, seed: 11), count: 4000)
        let share = Double(picks.filter { $0 == 1 }.count) / 4000
        #expect(abs(share - 0.75) < 0.03)
    }

    @Test func logprobsAreNormalizedAndOrdered() {
        let top = logits.withUnsafeBufferPointer { Logprobs.top(3, in: $0) }
        #expect(top.map(\.token) == [1, 5, 2])
        let total = logits.reduce(0.0) { $0 + exp(Double($1)) }
        #expect(abs(Double(top[0].logprob) - (3.0 - log(total))) < 1e-5)
        let single = logits.withUnsafeBufferPointer { Logprobs.of(1, in: $0) }
        #expect(single == top[0].logprob)
        #expect(logits.withUnsafeBufferPointer { Logprobs.top(0, in: $0) }.isEmpty)
    }
}
