import Foundation
import LoomEngine
import LoomModel
import LoomTesting
import Synchronization
import Testing

/// Collects what the engine exports, as a prefill worker's sink would.
final class RecordingSink: KVExportSink {
    let chunks = Mutex<[(firstBlock: Int, blockCount: Int, bytes: [UInt8])]>([])
    let bytesPerBlock: Int

    init(bytesPerBlock: Int) { self.bytesPerBlock = bytesPerBlock }

    func export(firstBlock: Int, blockCount: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        var bytes = [UInt8](repeating: 0, count: blockCount * bytesPerBlock)
        bytes.withUnsafeMutableBytes { fill($0) }
        chunks.withLock { $0.append((firstBlock, blockCount, bytes)) }
    }
}

/// A prefill's KV leaves the engine chunk by chunk, each block once and
/// before the first token, with the bytes one pass over the whole prompt
/// would have written.
@Suite struct KVExportTests {
    let path: String
    init() throws { path = try TinyModel().write(to: temporaryPath("export.gguf")) }

    func prefill(_ prompt: [TokenID], tokenBudget: Int, fromBlock: Int) async throws -> RecordingSink {
        let model = try Transformer(path: path, threads: 1, maxBatchTokens: 64)
        let engine = try InferenceEngine(model: model, configuration: SchedulerConfiguration(
            blockCount: 32, tokenBudget: tokenBudget, maxRunning: 4, contextLength: model.config.contextLength))
        defer { engine.shutdown() }
        let sink = RecordingSink(bytesPerBlock: engine.kvLayout.bytesPerBlock)
        var request = GenerationRequest(prompt: prompt, maxTokens: 1)
        request.exportKV = KVExport(fromBlock: fromBlock, sink: sink)
        for try await output in engine.generate(request) {
            if case .token = output {
                #expect(sink.chunks.withLock { $0.reduce(0) { $0 + $1.blockCount } } > 0, "every block went out before the first token")
            }
        }
        return sink
    }

    @Test func eachChunkHandsOverTheBlocksItCompleted() async throws {
        let prompt = (0..<40).map { TokenID(($0 * 13) % 250) }
        let chunked = try await prefill(prompt, tokenBudget: 16, fromBlock: 0)
        #expect(chunked.chunks.withLock { $0.map { [$0.firstBlock, $0.blockCount] } } == [[0, 1], [1, 1], [2, 1]],
                "16 tokens a step: one full block per chunk, the partial last block with the prompt's end")
        let whole = try await prefill(prompt, tokenBudget: 64, fromBlock: 0)
        #expect(whole.chunks.withLock { $0.map { [$0.firstBlock, $0.blockCount] } } == [[0, 3]])
        #expect(chunked.chunks.withLock { $0.flatMap(\.bytes) } == whole.chunks.withLock { $0.flatMap(\.bytes) },
                "chunked export carries the bytes of one pass")
    }

    @Test func blocksTheReceiverHasAreNotSent() async throws {
        let prompt = (0..<40).map { TokenID(($0 * 7) % 250) }
        let sink = try await prefill(prompt, tokenBudget: 16, fromBlock: 2)
        #expect(sink.chunks.withLock { $0.map { [$0.firstBlock, $0.blockCount] } } == [[2, 1]])
    }
}
