import Foundation
import LoomEngine
import LoomModel
import LoomTesting
import Testing

/// The real model split over 2, 3 and 4 ranks against itself in one
/// process, on the 12 golden prompts teacher-forced for 32 tokens each.
///
/// A group cannot be bit-identical to one process: its partial outputs are
/// summed in another order, and the quantized activations turn those
/// last-bit differences into flipped roundings (llama.cpp against itself
/// with another batch size shows the same, see GenerationFidelityTests).
/// So the rule is the fidelity rule: the greedy token is one process's
/// unless its top-1/top-2 margin is under 0.1 nats, and the top-1 log
/// probability is within 0.1, bounded at llama.cpp's self-consistency.
@Suite(.serialized) struct GroupFidelityTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var name: String
            var prompt_ids: [TokenID]
            var tokens: [TokenID]
        }
        var cases: [Case]
    }

    /// Top-2 log probabilities at every teacher-forced step.
    func steps(_ model: Transformer, _ item: Golden.Case) throws -> [[Logprobs.Entry]] {
        let layout = KVCacheLayout(config: model.config)
        let blocks = layout.blocksNeeded(tokens: item.prompt_ids.count + item.tokens.count)
        let memory = UnsafeMutablePointer<UInt16>.allocate(capacity: layout.blockStride * blocks)
        defer { memory.deallocate() }
        let kv = KVCacheMemory(layout: layout, base: memory, blockCount: blocks)
        let table = (0..<Int32(blocks)).map { $0 }
        var batch = ForwardBatch()
        batch.append(tokens: item.prompt_ids, startingAt: 0, blockTable: table)
        var out = [Logprobs.top(2, in: try model.forward(batch, kv: kv))]
        for (step, token) in item.tokens.dropLast().enumerated() {
            var next = ForwardBatch()
            next.append(tokens: [token], startingAt: item.prompt_ids.count + step, blockTable: table)
            out.append(Logprobs.top(2, in: try model.forward(next, kv: kv)))
        }
        return out
    }

    @Test func groupsOfTwoThreeAndFourKeepTheFidelityRuleAgainstOneProcess() async throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Fixtures.data("generation/smollm2-greedy.json"))
        let path = try TestModel.path()
        let alone = try Transformer(path: path, threads: 2, maxBatchTokens: 256)
        let reference = try golden.cases.map { try steps(alone, $0) }
        for size in [2, 3, 4] {
            let group = try await InProcessGroup.start(path: path, size: size, maxBatchTokens: 256, kvBlocks: 16)
            var agreed = 0, positions = 0, violations: [String] = []
            var errors: [Float] = []
            for (item, expected) in zip(golden.cases, reference) {
                for (step, (ours, theirs)) in zip(try steps(group.leader, item), expected).enumerated() {
                    positions += 1
                    let margin = theirs[0].logprob - theirs[1].logprob
                    guard ours[0].token == theirs[0].token else {
                        if margin >= 0.1 { violations.append("\(item.name) step \(step): margin \(margin)") }
                        continue
                    }
                    agreed += 1
                    errors.append(abs(ours[0].logprob - theirs[0].logprob))
                    if errors.last! >= 0.1 { violations.append("\(item.name) step \(step): top-1 logprob off by \(errors.last!)") }
                }
            }
            group.stop()
            errors.sort()
            let report = "TP=\(size): \(agreed)/\(positions) agree; error median \(errors[errors.count / 2]) p90 \(errors[errors.count * 9 / 10]) max \(errors.last!); \(violations.count) outside the rule"
            print(report)
            #expect(group.failures.errors.withLock { $0 }.isEmpty)
            // llama.cpp against itself: 375 of 384 agree, median ≤ 0.020,
            // p90 ≤ 0.087, max ≤ 0.284, up to 29 positions outside the rule.
            #expect(Double(agreed) >= 0.96 * Double(positions), "\(report)")
            #expect(errors[errors.count / 2] <= 0.03 && errors[errors.count * 9 / 10] <= 0.15 && errors.last! <= 0.5, "\(report)")
            #expect(violations.count <= 58, "\(report)\n\(violations.joined(separator: "\n"))")
        }
    }
}
