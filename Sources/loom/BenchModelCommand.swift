import ArgumentParser
import Foundation
import LoomModel
import LoomTensorParallel

/// Engine throughput on synthetic prompts, shaped like llama-bench (pp512,
/// tg128) and llama-batched-bench (-npp 128 -ntg 128 -npl 16) so the figures
/// can be divided by theirs.
struct BenchModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Prefill, single-stream decode and 16-sequence decode throughput, and peak RSS.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Timed runs per measure (the median is reported); one untimed warm-up precedes them.")
    var runs: Int = 3

    @Option(name: .long, help: "Prompt tokens for the prefill measure.")
    var prefillTokens: Int = 512

    @Option(name: .long, help: "Prompt tokens before decoding (single and batched).")
    var promptTokens: Int = 128

    @Option(name: .long, help: "Tokens decoded per sequence.")
    var decodeTokens: Int = 128

    @Option(name: .long, help: "Sequences decoding together in the batched measure.")
    var sequences: Int = 16

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    @OptionGroup var tensorParallel: LocalGroupOptions

    @Option(name: .long, help: "With --tp: all-reduces of one decode row timed after the runs, for the latency percentiles.")
    var allReduceProbes: Int = 2000

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard prefillTokens >= 1, promptTokens >= 1, decodeTokens >= 1 else {
            throw ValidationError("--prefill-tokens, --prompt-tokens and --decode-tokens must be at least 1")
        }
        guard (1...64).contains(sequences) else { throw ValidationError("--sequences must be in 1...64") }
        guard allReduceProbes >= 1 else { throw ValidationError("--all-reduce-probes must be at least 1") }
    }

    func run() async throws {
        let file = try GGUFFile(path: try options.modelPath())
        let split = try TensorSplit(file: file, size: tensorParallel.tp)
        let model = try Transformer(
            file: file, threads: options.threads,
            maxBatchTokens: max(prefillTokens, sequences), maxLogitRows: max(sequences, 1), shard: split.shards[0])
        guard prefillTokens <= model.config.contextLength,
              promptTokens + decodeTokens <= model.config.contextLength else {
            throw ValidationError("the model's context is \(model.config.contextLength) tokens; ask for fewer")
        }
        var group: LocalGroup?
        if tensorParallel.tp > 1 {
            let layout = KVCacheLayout(config: model.config)
            // The most any of the bench's caches holds, by the bench's own sizing.
            let blocks = max(
                ModelBench.decodeBlocks(layout, prompt: promptTokens, tokens: decodeTokens, sequences: sequences),
                layout.blocksNeeded(tokens: prefillTokens))
            let geometry = GroupGeometry(
                kvBlocks: blocks, blockSize: layout.blockSize,
                maxBatchTokens: model.maxBatchTokens, maxLogitRows: model.maxLogitRows)
            group = try await LocalGroup.start(file: file, split: split, leader: model, threads: options.threads, geometry: geometry, options: tensorParallel)
        }
        defer {
            if let group { stderr("tensor parallel: rank 0 waited \(group.group.collective.value.waited) on its peers within steps") }
            group?.stop()
        }
        let bench = ModelBench(model: model)
        let prefill = measure("prefill \(prefillTokens) tokens") {
            try bench.prefill(tokens: prefillTokens)
        }
        let decode = measure("decode \(decodeTokens) tokens after \(promptTokens)") {
            try bench.decode(prompt: promptTokens, tokens: decodeTokens, sequences: 1)
        }
        let batched = measure("\(sequences) sequences decoding \(decodeTokens) tokens each") {
            try bench.decode(prompt: promptTokens, tokens: decodeTokens, sequences: sequences)
        }
        var result = BenchResult(
            prefillTokS: try prefill.get(), decodeTokS: try decode.get(),
            batch16DecodeTokS: try batched.get(), peakRSSMiB: peakResidentMiB())
        if let group {
            result.group = try GroupFigures(size: tensorParallel.tp, threads: options.threads, latencies: group.group.collective.value.measureAllReduce(count: allReduceProbes))
        }
        if json { print(result.json()) } else { print(result.table(sequences: sequences)) }
    }

    /// Warm-up then `runs` timed runs; returns the median rate in tokens/s.
    private func measure(_ label: String, _ body: () throws -> (tokens: Int, seconds: Double)) -> Result<Double, Error> {
        Result {
            stderr("\(label): warm-up")
            _ = try body()
            var rates: [Double] = []
            for run in 1...runs {
                let (tokens, seconds) = try body()
                rates.append(Double(tokens) / seconds)
                stderr("\(label): run \(run)/\(runs) \(String(format: "%.1f", rates.last!)) tok/s")
            }
            let sorted = rates.sorted()
            stderr("\(label): median \(String(format: "%.1f", median(sorted))), spread \(String(format: "%.1f", sorted.first!))–\(String(format: "%.1f", sorted.last!))")
            return median(sorted)
        }
    }

    private func median(_ sorted: [Double]) -> Double {
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

func stderr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Peak resident set of this process: ru_maxrss is in KiB on Linux, bytes on macOS.
func peakResidentMiB() -> Double {
    var usage = rusage()
    #if os(macOS)
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1_048_576
    #else
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
    #endif
}
