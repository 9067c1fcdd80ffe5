import Foundation
import LoomEngine
import LoomModel
import LoomTesting
import Synchronization
import Testing

/// Collects what the engine publishes, as a worker's store publisher would.
final class RecordingPublisher: KVPublishSink {
    let blocks = Mutex<[(block: PublishedBlock, bytes: [UInt8])]>([])

    func publish(_ block: PublishedBlock, bytes: UnsafeRawBufferPointer) {
        blocks.withLock { $0.append((block, Array(bytes))) }
    }
}

/// Every block the engine caches reaches its publisher once, named by the
/// chain the router hashes, with the bytes an export of it would carry.
@Suite struct KVPublishTests {
    @Test func everyFullBlockIsPublishedOnceWithItsChainAndBytes() async throws {
        let path = try TinyModel().write(to: temporaryPath("publish.gguf"))
        let model = try Transformer(path: path, threads: 1, maxBatchTokens: 64)
        let configuration = SchedulerConfiguration(blockCount: 32, tokenBudget: 16, maxRunning: 4, contextLength: model.config.contextLength)
        let publisher = RecordingPublisher()
        let engine = try InferenceEngine(model: model, configuration: configuration, publishing: publisher)
        defer { engine.shutdown() }
        let prompt = (0..<40).map { TokenID(($0 * 11) % 250) }
        let export = RecordingSink(bytesPerBlock: engine.kvLayout.bytesPerBlock)
        var request = GenerationRequest(prompt: prompt, maxTokens: 1)
        request.exportKV = KVExport(fromBlock: 0, sink: export)
        for try await _ in engine.generate(request) {}
        // The same prompt again: its blocks come from the cache, and are
        // not published a second time.
        for try await _ in engine.generate(GenerationRequest(prompt: prompt, maxTokens: 1)) {}

        let published = publisher.blocks.withLock { $0 }
        let chain = configuration.hasher.chain(prompt)
        #expect(published.map(\.block.hash) == chain, "the prompt's two full blocks, in order, once each")
        #expect(published.map(\.block.parent) == [nil, chain[0]])
        #expect(published.map(\.block.tokens) == [Array(prompt[0..<16]), Array(prompt[16..<32])])
        let exported = export.chunks.withLock { $0.flatMap(\.bytes) }
        let size = engine.kvLayout.bytesPerBlock
        #expect(published.flatMap(\.bytes) == Array(exported[0..<2 * size]), "the bytes the engine wrote for those blocks")
    }
}

/// Blocks brought in from outside (a KV store) are cached as if computed
/// here, after what the pool holds of their chain, which they never evict.
@Suite struct KVImportTests {
    func run(_ engine: InferenceEngine, _ prompt: [TokenID]) async throws -> (token: TokenID?, cached: Int) {
        var token: TokenID?, cached = 0
        for try await output in engine.generate(GenerationRequest(prompt: prompt, maxTokens: 1)) {
            switch output {
            case .token(let t, _, _): token = t
            case .finished(_, let usage): cached = usage.cachedPromptTokens
            }
        }
        return (token, cached)
    }

    @Test func anImportedTailJoinsTheCachedHeadAndTheRequestComputesNeither() async throws {
        let path = try TinyModel().write(to: temporaryPath("import.gguf"))
        let model = try Transformer(path: path, threads: 1, maxBatchTokens: 64)
        let publisher = RecordingPublisher()
        let engine = try InferenceEngine(model: model, configuration: SchedulerConfiguration(
            blockCount: 8, tokenBudget: 64, maxRunning: 2, contextLength: model.config.contextLength), publishing: publisher)
        defer { engine.shutdown() }
        let prompt = (0..<50).map { TokenID(($0 * 13) % 250) }
        let first = try await run(engine, prompt)
        let published = publisher.blocks.withLock { $0 }
        #expect(published.count == 3)
        // Another prompt, of six blocks (five full), takes the free blocks and
        // evicts the first prompt's tail; its head stays cached.
        _ = try await run(engine, (0..<90).map { TokenID(($0 * 7 + 3) % 250) })
        #expect(await engine.cachedPrefixBlocks(of: prompt) == 2)
        // Every block is evictable now; room for the import must not come
        // from the head it extends.
        let imported = await engine.importBlocks([published[2].block]) { [published] _, destination in
            published[2].bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
        }
        #expect(imported == 1)
        #expect(await engine.cachedPrefixBlocks(of: prompt) == 3)
        let again = try await run(engine, prompt)
        #expect(again.cached == 48, "the three full blocks came from the cache")
        #expect(again.token == first.token, "imported KV gives the token computed KV gave")
        #expect(publisher.blocks.withLock { $0.count } == 3 + 5, "the imported block was not published again")
    }
}
