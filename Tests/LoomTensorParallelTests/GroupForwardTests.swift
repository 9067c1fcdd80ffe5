import Foundation
import LoomModel
import LoomTensorParallel
import LoomTesting
import Testing

/// A group of N ranks computes what one process computes, up to the order
/// floats are summed in: on the tiny fixtures (dense, quantized, biased,
/// MoE with a shared expert), for N = 2, 3 and 4 over 3 KV heads.
@Suite(.serialized) struct GroupForwardTests {
    /// Six query heads over three KV heads, so 2 and 4 ranks split unevenly
    /// and 4 ranks replicate a KV head.
    static func spec(_ edit: (inout TinyModel) -> Void = { _ in }) -> TinyModel {
        var spec = TinyModel()
        spec.embedding = 96
        spec.heads = 6
        spec.kvHeads = 3
        spec.feedForward = 192
        edit(&spec)
        return spec
    }

    /// Prefill then greedy decode; every step's logits.
    func run(_ model: Transformer, prompt: [TokenID], steps: Int, blocks: Int = 8) throws -> [[Float]] {
        let layout = KVCacheLayout(config: model.config)
        let memory = UnsafeMutablePointer<UInt16>.allocate(capacity: layout.blockStride * blocks)
        defer { memory.deallocate() }
        let kv = KVCacheMemory(layout: layout, base: memory, blockCount: blocks)
        let table = (0..<Int32(blocks)).map { $0 }
        var batch = ForwardBatch()
        batch.append(tokens: prompt, startingAt: 0, blockTable: table)
        var all = [Array(try model.forward(batch, kv: kv))]
        for step in 0..<steps {
            let next = TokenID(all.last!.indices.max { all.last![$0] < all.last![$1] }!)
            var batch = ForwardBatch()
            batch.append(tokens: [next], startingAt: prompt.count + step, blockTable: table)
            all.append(Array(try model.forward(batch, kv: kv)))
        }
        return all
    }

    func compare(_ spec: TinyModel, sizes: [Int] = [2, 3, 4], tolerance: Float = 2e-3) async throws {
        let path = try spec.write(to: temporaryPath("tp.gguf"))
        let prompt: [TokenID] = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43]
        let alone = try run(Transformer(path: path, threads: 1, maxBatchTokens: 64), prompt: prompt, steps: 6)
        for size in sizes {
            let group = try await InProcessGroup.start(path: path, size: size)
            let grouped = try run(group.leader, prompt: prompt, steps: 6)
            group.stop()
            #expect(group.failures.errors.withLock { $0 }.isEmpty)
            for (step, (a, b)) in zip(alone, grouped).enumerated() {
                #expect(a.count == b.count)
                let scale = a.map(abs).max()!
                #expect(maxDifference(a, b) <= tolerance * scale, "TP=\(size), step \(step): logits differ by \(maxDifference(a, b)) of \(scale)")
                #expect(argmax(a) == argmax(b), "TP=\(size), step \(step): greedy token differs")
            }
        }
    }

    @Test func denseF32() async throws { try await compare(Self.spec()) }

    @Test func quantizedWeightsAreCutOnTheirBlocks() async throws {
        try await compare(Self.spec { $0.weightType = .q8_0; $0.embedding = 192; $0.feedForward = 256 }, tolerance: 5e-3)
    }

    @Test func biasesAndAnUntiedOutputHead() async throws {
        try await compare(Self.spec { $0.qkvBias = true; $0.tiedOutput = false; $0.architecture = "qwen2" })
    }

    @Test func mixtureOfExpertsWithASharedExpert() async throws {
        try await compare(Self.spec { $0.architecture = "qwen2moe"; $0.experts = 4; $0.expertsUsed = 2; $0.sharedExpert = true })
    }

    @Test func everyRankEndsWithTheSameResidual() async throws {
        // The logits rank 0 returns are gathered from every rank's vocabulary
        // columns: they are only consistent if every rank's hidden state is.
        let path = try Self.spec().write(to: temporaryPath("tp-same.gguf"))
        let group = try await InProcessGroup.start(path: path, size: 3)
        let twice = try (0..<2).map { _ in try run(group.leader, prompt: [1, 2, 3, 4, 5], steps: 3) }
        group.stop()
        #expect(twice[0] == twice[1], "the same steps give bit-identical logits")
    }
}

func argmax(_ values: [Float]) -> Int { values.indices.max { values[$0] < values[$1] }! }
