import Testing
import LoomEngine
import LoomModel
import LoomTesting

/// Allows one token per step, cycling through a fixed list, and records
/// what the engine said was emitted.
private struct Cycle: TokenConstraint {
    let tokens: [TokenID]
    var position = 0

    func mask(_ logits: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<logits.count where TokenID(i) != tokens[position % tokens.count] { logits[i] = -.infinity }
    }

    mutating func accept(_ token: TokenID) {
        precondition(token == tokens[position % tokens.count], "the engine emitted a masked token")
        position += 1
    }
}

@Suite struct TokenConstraintTests {
    @Test func theEngineSamplesOnlyWhatTheConstraintAllowsAndTellsItEachToken() async throws {
        let path = try TinyModel().write(to: temporaryPath("constraint.gguf"))
        let model = try Transformer(path: path, threads: 1, maxBatchTokens: 64)
        let engine = try InferenceEngine(model: model, configuration: SchedulerConfiguration(
            blockCount: 32, tokenBudget: 32, maxRunning: 4, contextLength: model.config.contextLength))
        defer { engine.shutdown() }
        let wanted: [TokenID] = [65, 66, 67]
        for sampling in [SamplingParameters(), SamplingParameters(temperature: 1, seed: 3)] {
            var got: [TokenID] = []
            let request = GenerationRequest(prompt: [1, 2, 3], maxTokens: 7, sampling: sampling, topLogprobs: 2, constraint: Cycle(tokens: wanted))
            for try await output in engine.generate(request) {
                guard case .token(let token, let logprob, let top) = output else { continue }
                got.append(token)
                // Under the mask the allowed token has all the probability.
                #expect(abs(logprob) < 1e-5)
                #expect(top.first?.token == token)
            }
            #expect(got == [65, 66, 67, 65, 66, 67, 65])
        }
    }
}
