import Prometheus

/// The serving metrics `/metrics` exposes in Prometheus' text format. Each
/// server owns its registry (no global bootstrap), so tests and several
/// servers in one process never share counts.
public struct ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let timeToFirstToken: DurationHistogram
    let interTokenLatency: DurationHistogram
    let requestLatency: DurationHistogram
    let requestsInFlight: Gauge
    let promptTokens: Counter
    let generatedTokens: Counter
    let prefixQueriedTokens: Counter
    let prefixHitTokens: Counter

    public init() {
        let fast: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]
        let slow: [Duration] = [.milliseconds(100), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300)]
        timeToFirstToken = registry.makeDurationHistogram(name: "loom_time_to_first_token_seconds", buckets: fast, help: "Request arrival to the first generated token")
        interTokenLatency = registry.makeDurationHistogram(name: "loom_inter_token_latency_seconds", buckets: fast, help: "Time between consecutive tokens of one choice")
        requestLatency = registry.makeDurationHistogram(name: "loom_e2e_request_latency_seconds", buckets: slow, help: "Request arrival to the last token of a choice")
        requestsInFlight = registry.makeGauge(name: "loom_requests_in_flight", help: "Generation requests being served over HTTP")
        promptTokens = registry.makeCounter(name: "loom_prompt_tokens_total", help: "Prompt tokens of accepted requests")
        generatedTokens = registry.makeCounter(name: "loom_generation_tokens_total", help: "Tokens generated")
        prefixQueriedTokens = registry.makeCounter(name: "loom_prefix_cache_queried_tokens_total", help: "Prompt tokens looked up in the prefix cache")
        prefixHitTokens = registry.makeCounter(name: "loom_prefix_cache_hit_tokens_total", help: "Prompt tokens served from the prefix cache")
    }

    public func render() -> [UInt8] { registry.emitToBuffer() }
}

/// Times one choice: first token, gaps between tokens, and the whole request.
struct ChoiceTimer: Sendable {
    let metrics: ServerMetrics
    let start: ContinuousClock.Instant
    private var lastToken: ContinuousClock.Instant?

    init(metrics: ServerMetrics, start: ContinuousClock.Instant) {
        self.metrics = metrics
        self.start = start
    }

    mutating func token() {
        let now = ContinuousClock.now
        if let lastToken {
            metrics.interTokenLatency.record(now - lastToken)
        } else {
            metrics.timeToFirstToken.record(now - start)
        }
        lastToken = now
    }

    func finished(completionTokens: Int, cachedPromptTokens: Int, promptTokens: Int) {
        metrics.requestLatency.record(ContinuousClock.now - start)
        metrics.generatedTokens.increment(by: Int64(completionTokens))
        metrics.prefixQueriedTokens.increment(by: Int64(promptTokens))
        metrics.prefixHitTokens.increment(by: Int64(cachedPromptTokens))
    }
}
