import Foundation
import Testing
import LoomEngine
import LoomModel
import LoomTesting

/// llama.cpp's greedy generations on the real model, with its top-5
/// log-probabilities at every step (scripts/golden/generation_goldens.py).
struct GenerationGolden: Decodable {
    struct Case: Decodable {
        var name: String
        var prompt: String
        var prompt_ids: [TokenID]
        var tokens: [TokenID]
        var top5: [[[Double]]]
    }
    var cases: [Case]

    static func load() throws -> GenerationGolden {
        try JSONDecoder().decode(GenerationGolden.self, from: Fixtures.data("generation/smollm2-greedy.json"))
    }
}

/// How far our teacher-forced log-probabilities are from llama.cpp's, under
/// the model-runtime issue's rule: our greedy token must be llama.cpp's unless
/// llama.cpp is nearly undecided (top-1/top-2 margin under 0.1 nats), and
/// where tokens agree the top-1 log-probability must be within 0.1.
///
/// llama.cpp does not meet that rule against itself: re-running the golden
/// prompts with n_batch=1 gives 25 violations in 384 positions (max error
/// 0.198), with flash attention 29 (max 0.284), because its quantized
/// activations turn last-bit differences into flipped roundings. So the test
/// bounds the statistics at llama.cpp's own self-consistency, and the exact
/// arithmetic is pinned separately by the tiny-architecture goldens (2.5e-5).
struct FidelityReport: CustomStringConvertible {
    var positions = 0
    var agreed = 0
    var violations: [String] = []
    var errors: [Double] = []

    mutating func check(case name: String, step: Int, golden: [[Double]], ours: [Logprobs.Entry]) {
        positions += 1
        let goldenTop = TokenID(golden[0][0]), margin = golden[0][1] - golden[1][1]
        guard ours[0].token == goldenTop else {
            if margin >= 0.1 {
                violations.append("\(name) step \(step): ours \(ours[0].token), llama.cpp \(goldenTop) (margin \(margin))")
            }
            return
        }
        agreed += 1
        let error = abs(Double(ours[0].logprob) - golden[0][1])
        errors.append(error)
        if error >= 0.1 {
            violations.append("\(name) step \(step): top-1 logprob \(ours[0].logprob) vs llama.cpp \(golden[0][1])")
        }
    }

    func percentile(_ p: Double) -> Double {
        let sorted = errors.sorted()
        return sorted.isEmpty ? .infinity : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    var description: String {
        "\(agreed)/\(positions) greedy tokens agree; top-1 logprob error median \(String(format: "%.4f", percentile(0.5))) "
            + "p90 \(String(format: "%.4f", percentile(0.9))) max \(String(format: "%.4f", percentile(1))); "
            + "\(violations.count) positions outside the 0.1 rule"
    }
}

@Suite(.serialized) struct GenerationFidelityTests {
    let golden: GenerationGolden
    let model: Transformer

    init() throws {
        golden = try GenerationGolden.load()
        model = try Transformer(path: try TestModel.path(), threads: 2, maxBatchTokens: 256)
    }

    /// Teacher-forced: feeds llama.cpp's tokens so every one of the 12 × 32
    /// positions is compared in the context llama.cpp saw.
    @Test func everyStepMatchesLlamaCpp() throws {
        #expect(golden.cases.count >= 10)
        var report = FidelityReport()
        for item in golden.cases {
            let steps = item.tokens.count
            let cache = SequenceKVCache(layout: KVCacheLayout(config: model.config), capacity: item.prompt_ids.count + steps)
            var batch = ForwardBatch()
            batch.append(tokens: item.prompt_ids, startingAt: 0, blockTable: cache.blockTable)
            var logits = try model.forward(batch, kv: cache.memory)
            for step in 0..<steps {
                report.check(case: item.name, step: step, golden: item.top5[step], ours: Logprobs.top(2, in: logits))
                guard step + 1 < steps else { break }
                var next = ForwardBatch()
                next.append(tokens: [item.tokens[step]], startingAt: item.prompt_ids.count + step, blockTable: cache.blockTable)
                logits = try model.forward(next, kv: cache.memory)
            }
        }
        print("fidelity (teacher-forced): \(report)")
        #expect(report.positions == golden.cases.reduce(0) { $0 + $1.tokens.count })
        // llama.cpp against its own golden with n_batch=1 / flash attention:
        // 376 and 375 of 384 agree, median 0.009 / 0.020, p90 0.078 / 0.087,
        // max 0.198 / 0.284, 25 / 29 violations.
        #expect(Double(report.agreed) >= 0.96 * Double(report.positions), "\(report)")
        #expect(report.percentile(0.5) <= 0.03, "\(report)")
        #expect(report.percentile(0.9) <= 0.15, "\(report)")
        #expect(report.percentile(1) <= 0.5, "\(report)")
        // Measured: 34 when the integer kernels summed in ggml's lane order,
        // 38 since the packed kernels sum whole blocks exactly (47 with float
        // dots); llama.cpp's own variants: 25 and 29. The bound is twice
        // llama.cpp's worst, so a real regression trips it.
        #expect(report.violations.count <= 58, "\(report.violations.joined(separator: "\n"))")
    }

    /// Free-running greedy generation: the sequences must be llama.cpp's up to
    /// the first near-tie, where either choice is a faithful run.
    @Test func greedyGenerationMatchesLlamaCpp() throws {
        var identical = 0
        for item in golden.cases {
            let result = try Generator(model: model).generate(prompt: item.prompt_ids, maxTokens: item.tokens.count)
            let agree = zip(result.tokens, item.tokens).prefix { $0 == $1 }.count
            if agree == item.tokens.count {
                identical += 1
                continue
            }
            // Free-running, a divergence is a flipped near-tie; llama.cpp's own
            // configuration variants flip at margins up to ~0.3 nats.
            let golden = item.top5[agree]
            #expect(golden[0][1] - golden[1][1] < 0.5, "\(item.name): diverged at step \(agree) where llama.cpp's margin is \(golden[0][1] - golden[1][1])")
        }
        print("fidelity (free-running): \(identical)/\(golden.cases.count) generations identical to llama.cpp for all \(golden.cases[0].tokens.count) tokens")
    }
}
