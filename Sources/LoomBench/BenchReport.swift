import Foundation

/// The summary of one run. Field names are the `--json` keys; latencies are
/// in milliseconds and `nil` (JSON null) when no request succeeded.
public struct BenchReport: Sendable, Encodable {
    public var workload: String
    public var model: String
    public var requests: Int
    public var failures: Int
    public var failure_reasons: [String]
    public var concurrency: Int?
    public var rate: Double?
    public var duration_s: Double
    public var output_tokens: Int
    /// Mean `usage.prompt_tokens` over the requests that reported it.
    public var prompt_tokens_mean: Double?
    public var output_tok_s: Double
    public var request_s: Double
    public var ttft_ms: Percentiles?
    public var itl_ms: Percentiles?
    public var e2e_ms: Percentiles?
    /// Multi-round only: TTFT of each round (the first has nothing cached
    /// but the system prompt; the later ones find their history, or not).
    public var ttft_ms_by_round: [Percentiles?]?

    /// How many distinct failure reasons are kept: enough to see a pattern,
    /// few enough to read.
    public static let keptFailureReasons = 5

    public init(workload: WorkloadKind, model: String, shape: LoadShape, result: RunResult) {
        let ok = result.outcomes.compactMap(\.metrics)
        let reasons = result.outcomes.compactMap(\.failureReason)
        var distinct: [String] = []
        for reason in reasons where !distinct.contains(reason) && distinct.count < Self.keptFailureReasons {
            distinct.append(reason)
        }
        self.workload = workload.rawValue
        self.model = model
        requests = result.outcomes.count
        failures = reasons.count
        failure_reasons = distinct
        concurrency = shape.concurrency
        rate = shape.rate
        duration_s = result.wallTime
        output_tokens = ok.reduce(0) { $0 + $1.outputTokens }
        let prompts = ok.compactMap(\.promptTokens)
        prompt_tokens_mean = prompts.isEmpty ? nil : Double(prompts.reduce(0, +)) / Double(prompts.count)
        let wall = max(result.wallTime, .leastNonzeroMagnitude)
        output_tok_s = Double(output_tokens) / wall
        request_s = Double(ok.count) / wall
        ttft_ms = Percentiles(ok.map(\.timeToFirstToken))?.scaled(by: 1000)
        itl_ms = Percentiles(ok.flatMap(\.interTokenLatencies))?.scaled(by: 1000)
        e2e_ms = Percentiles(ok.map(\.endToEnd))?.scaled(by: 1000)
    }

    public func encode(to encoder: any Encoder) throws {
        // Written by hand so absent values are `null` rather than missing:
        // scripts read every key of every run.
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(workload, forKey: .workload)
        try c.encode(model, forKey: .model)
        try c.encode(requests, forKey: .requests)
        try c.encode(failures, forKey: .failures)
        try c.encode(failure_reasons, forKey: .failure_reasons)
        try c.encode(concurrency, forKey: .concurrency)
        try c.encode(rate, forKey: .rate)
        try c.encode(duration_s, forKey: .duration_s)
        try c.encode(output_tokens, forKey: .output_tokens)
        try c.encode(prompt_tokens_mean, forKey: .prompt_tokens_mean)
        try c.encode(output_tok_s, forKey: .output_tok_s)
        try c.encode(request_s, forKey: .request_s)
        try c.encode(ttft_ms, forKey: .ttft_ms)
        try c.encode(itl_ms, forKey: .itl_ms)
        try c.encode(e2e_ms, forKey: .e2e_ms)
        if let ttft_ms_by_round { try c.encode(ttft_ms_by_round, forKey: .ttft_ms_by_round) }
    }

    /// Sets `ttft_ms_by_round` from `result`'s outcomes, `users` per round
    /// in round order (as `MultiRoundRunner` returns them).
    public mutating func splitRounds(of result: RunResult, users: Int) {
        ttft_ms_by_round = Swift.stride(from: 0, to: result.outcomes.count, by: max(1, users)).map { start in
            let round = result.outcomes[start..<min(result.outcomes.count, start + users)].compactMap(\.metrics)
            return Percentiles(round.map(\.timeToFirstToken))?.scaled(by: 1000)
        }
    }

    enum CodingKeys: String, CodingKey {
        case workload, model, requests, failures, failure_reasons, concurrency, rate, duration_s
        case output_tokens, prompt_tokens_mean, output_tok_s, request_s, ttft_ms, itl_ms, e2e_ms, ttft_ms_by_round
    }

    /// One line of JSON, keys sorted so runs diff cleanly.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
