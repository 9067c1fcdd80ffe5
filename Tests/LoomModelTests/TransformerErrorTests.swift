import Foundation
import Testing
import LoomModel
import LoomTesting

@Suite struct TransformerErrorTests {
    let model: Transformer
    let kv: TestKV

    init() throws {
        model = try loadTiny(TinyModel())
        kv = TestKV(model.config, blocks: 2)
    }

    private func expectError(_ code: ModelError.Code, _ build: (inout ForwardBatch) -> Void) {
        var batch = ForwardBatch()
        build(&batch)
        #expect(throws: ModelError.self) { try model.forward(batch, kv: kv.memory) }
        do {
            _ = try model.forward(batch, kv: kv.memory)
        } catch let error as ModelError {
            #expect(error.code == code, "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func rejectsTokensOutsideTheVocabulary() {
        expectError(.invalidToken) { $0.append(tokens: [TokenID(model.config.vocabularySize)], startingAt: 0, blockTable: [0]) }
        expectError(.invalidToken) { $0.append(tokens: [-1], startingAt: 0, blockTable: [0]) }
    }

    @Test func rejectsPositionsBeyondTheReservedBlocks() {
        expectError(.contextOverflow) { $0.append(tokens: [1], startingAt: 16, blockTable: [0]) }
    }

    @Test func rejectsBlocksOutsideTheMemory() {
        expectError(.invalidBatch) { $0.append(tokens: [1], startingAt: 0, blockTable: [2]) }
    }

    @Test func rejectsMoreLogitRowsThanItCanHold() {
        expectError(.invalidBatch) {
            $0.append(tokens: [TokenID](repeating: 1, count: 65), startingAt: 0, blockTable: [0, 1, 0, 1, 0], logits: .all)
        }
    }

    @Test func aFailedBatchLeavesTheModelUsable() throws {
        var bad = ForwardBatch()
        bad.append(tokens: [99_999], startingAt: 0, blockTable: [0])
        #expect(throws: ModelError.self) { try model.forward(bad, kv: kv.memory) }
        var good = ForwardBatch()
        good.append(tokens: [1, 2], startingAt: 0, blockTable: [0])
        #expect(try model.forward(good, kv: kv.memory).allSatisfy(\.isFinite))
    }

    @Test func missingTensorIsNamed() throws {
        var writer = TinyModel().gguf()
        writer.removeTensor("blk.1.attn_k.weight")
        let path = temporaryPath("missing.gguf")
        try writer.write(to: path)
        do {
            _ = try Transformer(path: path, threads: 1)
            Issue.record("loaded a model without blk.1.attn_k.weight")
        } catch let error as GGUFError {
            #expect(error.code == .missingTensor)
            #expect(error.message.contains("blk.1.attn_k.weight"))
            #expect(error.message.contains(path))
        }
    }

    @Test func unsupportedArchitectureIsNamed() throws {
        var writer = TinyModel().gguf()
        writer.set("general.architecture", .string("rwkv6"))
        let path = temporaryPath("arch.gguf")
        try writer.write(to: path)
        #expect { try Transformer(path: path, threads: 1) } throws: { error in
            "\(error)".contains("rwkv6") && "\(error)".contains("not supported")
        }
    }
}
