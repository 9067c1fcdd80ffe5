import Foundation
import LoomBench
import LoomCluster
import LoomEngine
import LoomKVStore
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire

extension StoreBench {
    /// Seconds one block costs to fetch as a worker fetches: a get of a
    /// batch pushed into registered pages, then each block copied into a
    /// pool block (the import). Median over runs, after one untimed.
    func fetchSeconds(runs: Int, store: RPCAddress) async throws -> Double {
        var scratch = [UInt8](repeating: 0, count: batch * layout.payloadBytes)
        var times: [Double] = []
        try await RPCConnection.withConnection(to: store, configuration: transfer.configuration) { connection in
            let client = StoreClient(connection: connection, peers: transfer.peers, writer: "bench")
            try await puts(client, run: 1_000)
            for run in 0...runs {
                let start = ContinuousClock.now
                try await gets(client, run: 1_000)
                scratch.withUnsafeMutableBytes { scratch in
                    for block in 0..<blocks {
                        let from = UnsafeRawBufferPointer(rebasing: pool.bytes[(blocks + block) * layout.payloadBytes ..< (blocks + block + 1) * layout.payloadBytes])
                        let into = (block % batch) * layout.payloadBytes
                        UnsafeMutableRawBufferPointer(rebasing: scratch[into ..< into + layout.payloadBytes]).copyMemory(from: from)
                    }
                }
                if run > 0 { times.append((ContinuousClock.now - start).seconds / Double(blocks)) }
            }
        }
        return Percentiles.percentile(times.sorted(), 50)
    }
}

/// What computing one block of KV costs on this machine: prefills of
/// distinct prompts (so nothing is cached), their time over their blocks.
enum PrefillCost {
    static func perBlock(path: String, threads: Int, tokens: Int = 512, runs: Int = 3) async throws -> Double {
        let model = try LanguageModel(path: path, threads: threads, maxBatchTokens: Limits.stepTokenBudget)
        let engine = try InferenceEngine(model: model.transformer, configuration: SchedulerConfiguration(
            blockCount: tokens / 16 + 8, tokenBudget: Limits.stepTokenBudget, maxRunning: 1, contextLength: model.transformer.config.contextLength))
        defer { engine.shutdown() }
        let vocabulary = model.tokenizer.vocabulary.tokens.count
        var times: [Double] = []
        for run in 0...runs {
            let prompt = (0..<tokens).map { TokenID((run * 7_919 + $0 * 131 + 1_000) % vocabulary) }
            let start = ContinuousClock.now
            for try await _ in engine.generate(GenerationRequest(prompt: prompt, maxTokens: 1)) {}
            if run > 0 { times.append((ContinuousClock.now - start).seconds) }
        }
        return Percentiles.percentile(times.sorted(), 50) / Double(tokens / 16)
    }
}
