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

    func compare(_ spec: TinyModel, sizes: [Int] = [2, 3, 4], tolerance: Float = 2e-3, transport: GroupTransport = .automatic) async throws {
        let path = try spec.write(to: temporaryPath("tp.gguf"))
        let prompt: [TokenID] = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43]
        let alone = try run(Transformer(path: path, threads: 1, maxBatchTokens: 64), prompt: prompt, steps: 6)
        for size in sizes {
            let group = try await InProcessGroup.start(path: path, size: size, transports: Array(repeating: transport, count: size))
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

    @Test func denseAndMixtureOfExpertsOverTCP() async throws {
        try await compare(Self.spec(), transport: .tcp)
        try await compare(Self.spec { $0.architecture = "qwen2moe"; $0.experts = 4; $0.expertsUsed = 2; $0.sharedExpert = true }, transport: .tcp)
    }

    /// The same partials summed in the same order: a group gives the same
    /// bits over tcp, over shm, and with some pairs on each (ranks 0 and 1
    /// sharing memory, rank 2 on a "host" of its own).
    @Test func tcpShmAndMixedGroupsGiveBitIdenticalLogits() async throws {
        let path = try Self.spec().write(to: temporaryPath("tp-links.gguf"))
        let prompt: [TokenID] = Array(1...40)
        var results: [[[Float]]] = []
        for transports: [GroupTransport] in [[.automatic, .automatic, .automatic], [.tcp, .tcp, .tcp], [.automatic, .automatic, .tcp]] {
            let group = try await InProcessGroup.start(path: path, size: 3, transports: transports)
            #expect(group.leaderGroup.overTCP == Set(transports.indices.filter { r in r > 0 && (transports[r] == .tcp || transports[0] == .tcp) }))
            results.append(try run(group.leader, prompt: prompt, steps: 4))
            group.stop()
            #expect(group.failures.errors.withLock { $0 }.isEmpty)
        }
        #expect(results[1] == results[0] && results[2] == results[0])
    }

    /// Prefill steps larger than one reduce slot go over tcp in rounds
    /// (a round is 256 tokens, 384 KiB here): both sides send a whole round
    /// at once, more than the socket buffers hold, which must not deadlock.
    @Test func aPrefillOfManyRoundsOverTCP() async throws {
        let path = try Self.spec { $0.embedding = 384; $0.feedForward = 512; $0.context = 1024 }.write(to: temporaryPath("tp-rounds.gguf"))
        let prompt = (0..<600).map { TokenID($0 % 200 + 1) }
        let alone = try run(Transformer(path: path, threads: 1, maxBatchTokens: 640), prompt: prompt, steps: 1, blocks: 40)
        let group = try await InProcessGroup.start(path: path, size: 2, maxBatchTokens: 640, kvBlocks: 40, transports: [.tcp, .tcp])
        let grouped = try run(group.leader, prompt: prompt, steps: 1, blocks: 40)
        group.stop()
        for (a, b) in zip(alone, grouped) {
            #expect(maxDifference(a, b) <= 2e-3 * a.map(abs).max()!)
        }
    }
}

func argmax(_ values: [Float]) -> Int { values.indices.max { values[$0] < values[$1] }! }
