import Foundation
import Testing
import LoomModel
import LoomTesting

/// A paged cache for tests: one allocation, blocks handed out by id.
final class TestKV {
    let layout: KVCacheLayout
    let blocks: Int
    let base: UnsafeMutablePointer<UInt16>
    init(_ config: ModelConfig, blocks: Int) {
        layout = KVCacheLayout(config: config)
        self.blocks = blocks
        base = .allocate(capacity: blocks * layout.blockStride)
        base.initialize(repeating: 0, count: blocks * layout.blockStride)
    }
    deinit { base.deallocate() }
    var memory: KVCacheMemory { KVCacheMemory(layout: layout, base: base, blockCount: blocks) }
}

func loadTiny(_ spec: TinyModel, maxBatchTokens: Int = 64, threads: Int = 2) throws -> Transformer {
    let path = try spec.write(to: temporaryPath("tiny.gguf"))
    return try Transformer(path: path, threads: threads, maxBatchTokens: maxBatchTokens)
}

/// Logits of every position of `tokens`, fed one token per step.
func stepwiseLogits(_ model: Transformer, _ tokens: [TokenID], blocks: [Int32], kv: TestKV) throws -> [[Float]] {
    try tokens.enumerated().map { position, token in
        var batch = ForwardBatch()
        batch.append(tokens: [token], startingAt: position, blockTable: blocks)
        return Array(try model.forward(batch, kv: kv.memory))
    }
}

@Suite struct TransformerTests {
    @Test func batchOfSequencesEqualsEachAlone() throws {
        let model = try loadTiny(TinyModel())
        let a: [TokenID] = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10, 65, 66, 67, 68, 69]
        let b: [TokenID] = [258, 84, 104, 101]
        let alone = TestKV(model.config, blocks: 4)
        let expectedA = try stepwiseLogits(model, a, blocks: [0, 1], kv: alone)
        let expectedB = try stepwiseLogits(model, b, blocks: [2], kv: alone)

        // A's first 10 tokens as one prefill, then A's rest together with all of B.
        let kv = TestKV(model.config, blocks: 4)
        var first = ForwardBatch()
        first.append(tokens: a[..<10], startingAt: 0, blockTable: [3, 0], logits: .all)
        let firstLogits = Array(try model.forward(first, kv: kv.memory))
        var second = ForwardBatch()
        second.append(tokens: b, startingAt: 0, blockTable: [1], logits: .all)
        second.append(tokens: a[10...], startingAt: 10, blockTable: [3, 0], logits: .last)
        let secondLogits = Array(try model.forward(second, kv: kv.memory))

        let v = model.config.vocabularySize
        for position in 0..<10 {
            #expect(maxDifference(Array(firstLogits[(position * v)..<((position + 1) * v)]), expectedA[position]) < 1e-4)
        }
        for position in 0..<b.count {
            #expect(maxDifference(Array(secondLogits[(position * v)..<((position + 1) * v)]), expectedB[position]) < 1e-4)
        }
        #expect(maxDifference(Array(secondLogits[(b.count * v)...]), expectedA[a.count - 1]) < 1e-4)
    }

    @Test func chunkedPrefillEqualsOnePass() throws {
        var spec = TinyModel()
        spec.seed = 7
        let whole = try loadTiny(spec, maxBatchTokens: 64)
        let chunked = try loadTiny(spec, maxBatchTokens: 3)
        let tokens: [TokenID] = (0..<20).map { TokenID(($0 * 37) % 256) }
        var batch = ForwardBatch()
        batch.append(tokens: tokens, startingAt: 0, blockTable: [0, 1], logits: .all)
        let kv1 = TestKV(whole.config, blocks: 2), kv2 = TestKV(whole.config, blocks: 2)
        let one = Array(try whole.forward(batch, kv: kv1.memory))
        let many = Array(try chunked.forward(batch, kv: kv2.memory))
        #expect(one.count == tokens.count * whole.config.vocabularySize)
        #expect(maxDifference(one, many) < 1e-5)
    }

    @Test func mixtureOfIdenticalExpertsEqualsTheDenseModel() throws {
        var dense = TinyModel()
        dense.seed = 3
        var moe = dense
        moe.experts = 4
        moe.expertsUsed = 2
        moe.expertsCopyDense = true
        let denseModel = try loadTiny(dense), moeModel = try loadTiny(moe)
        #expect(moeModel.config.isMoE)
        let tokens: [TokenID] = [10, 20, 30, 40, 50, 60, 70]
        let kvA = TestKV(denseModel.config, blocks: 1), kvB = TestKV(moeModel.config, blocks: 1)
        let a = try stepwiseLogits(denseModel, tokens, blocks: [0], kv: kvA)
        let b = try stepwiseLogits(moeModel, tokens, blocks: [0], kv: kvB)
        for (x, y) in zip(a, b) { #expect(maxDifference(x, y) < 1e-4) }
    }

    @Test func logitsChangeWithContext() throws {
        let model = try loadTiny(TinyModel())
        let kv = TestKV(model.config, blocks: 1)
        let logits = try stepwiseLogits(model, [1, 2, 3], blocks: [0], kv: kv)
        #expect(maxDifference(logits[1], logits[2]) > 1e-3)
        #expect(logits.allSatisfy { $0.allSatisfy(\.isFinite) })
    }
}
