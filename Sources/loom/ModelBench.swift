import LoomBench
import LoomEngine
import LoomModel

/// The timed workloads of `loom bench model`. Prompts are fixed synthetic
/// token ids (speed does not depend on which tokens they are) and decoding is
/// greedy, so every run does the same work.
struct ModelBench {
    let model: Transformer

    private func promptToken(_ i: Int, sequence: Int) -> TokenID {
        TokenID((i * 7919 + sequence * 104_729 + 1) % model.config.vocabularySize)
    }

    /// One forward pass over a `tokens`-token prompt into a fresh cache.
    func prefill(tokens: Int) throws -> (tokens: Int, seconds: Double) {
        let cache = SequenceKVCache(layout: KVCacheLayout(config: model.config), capacity: tokens)
        var batch = ForwardBatch()
        batch.append(tokens: (0..<tokens).map { promptToken($0, sequence: 0) }, startingAt: 0, blockTable: cache.blockTable)
        let clock = ContinuousClock(), start = clock.now
        _ = try model.forward(batch, kv: cache.memory)
        return (tokens, (clock.now - start).seconds)
    }

    /// Prefills `sequences` prompts (untimed), then decodes `tokens` steps in
    /// which every sequence advances by one token; times the decode steps.
    func decode(prompt: Int, tokens: Int, sequences: Int) throws -> (tokens: Int, seconds: Double) {
        let layout = KVCacheLayout(config: model.config)
        let blocksPerSequence = layout.blocksNeeded(tokens: prompt + tokens)
        let cache = SequenceKVCache(layout: layout, capacity: Self.decodeBlocks(layout, prompt: prompt, tokens: tokens, sequences: sequences) * layout.blockSize)
        let tables = (0..<sequences).map {
            Array(cache.blockTable[($0 * blocksPerSequence)..<(($0 + 1) * blocksPerSequence)])
        }
        var next: [TokenID] = []
        for s in 0..<sequences {
            var batch = ForwardBatch()
            batch.append(tokens: (0..<prompt).map { promptToken($0, sequence: s) }, startingAt: 0, blockTable: tables[s])
            next.append(argmax(try model.forward(batch, kv: cache.memory), row: 0))
        }
        let clock = ContinuousClock(), start = clock.now
        for step in 0..<tokens {
            var batch = ForwardBatch()
            for s in 0..<sequences {
                batch.append(tokens: [next[s]], startingAt: prompt + step, blockTable: tables[s])
            }
            let logits = try model.forward(batch, kv: cache.memory)
            next = (0..<sequences).map { argmax(logits, row: $0) }
        }
        return (tokens * sequences, (clock.now - start).seconds)
    }

    /// Blocks `decode` caches: whole blocks per sequence, side by side.
    static func decodeBlocks(_ layout: KVCacheLayout, prompt: Int, tokens: Int, sequences: Int) -> Int {
        sequences * layout.blocksNeeded(tokens: prompt + tokens)
    }

    private func argmax(_ logits: UnsafeBufferPointer<Float>, row: Int) -> TokenID {
        let vocab = model.config.vocabularySize
        let slice = logits[(row * vocab)..<((row + 1) * vocab)]
        return TokenID(slice.indices.max { slice[$0] < slice[$1] }! - row * vocab)
    }

}

struct BenchResult {
    var prefillTokS: Double
    var decodeTokS: Double
    var batch16DecodeTokS: Double
    var peakRSSMiB: Double
    var group: GroupFigures?

    func json() -> String {
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        var fields = "\"prefill_tok_s\": \(f(prefillTokS)), \"decode_tok_s\": \(f(decodeTokS)), "
            + "\"batch16_decode_tok_s\": \(f(batch16DecodeTokS)), \"peak_rss_mib\": \(f(peakRSSMiB))"
        if let group {
            fields += ", \"tp\": \(group.size), \"threads_per_rank\": \(group.threads), "
                + "\"allreduce_p50_us\": \(f(group.p50)), \"allreduce_p99_us\": \(f(group.p99))"
        }
        return "{\(fields)}"
    }

    func table(sequences: Int) -> String {
        func f(_ v: Double) -> String { String(format: "%10.1f", v) }
        var lines = """
            prefill            \(f(prefillTokS)) tok/s
            decode             \(f(decodeTokS)) tok/s
            decode x\(sequences)\(String(repeating: " ", count: max(0, 10 - String(sequences).count)))\(f(batch16DecodeTokS)) tok/s
            peak RSS           \(f(peakRSSMiB)) MiB (rank 0)
            """
        if let group {
            lines += "\nall-reduce, 1 row  \(f(group.p50)) µs p50, \(String(format: "%.1f", group.p99)) µs p99 (\(group.size) ranks × \(group.threads) threads)"
        }
        return lines
    }
}

/// What a tensor-parallel run adds: the group's shape and the latency of
/// one decode row's all-reduce, in µs.
struct GroupFigures {
    var size: Int
    var threads: Int
    var p50: Double
    var p99: Double

    init(size: Int, threads: Int, latencies: [Duration]) {
        let sorted = latencies.map { $0.seconds * 1e6 }.sorted()
        self.size = size
        self.threads = threads
        p50 = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
    }
}
