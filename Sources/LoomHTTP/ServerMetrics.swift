import LoomEngine
import Prometheus

/// The serving metrics `/metrics` exposes in Prometheus' text format. Each
/// server owns its registry (no global bootstrap), so tests and several
/// servers in one process never share counts.
public struct ServerMetrics: Sendable {
    /// Public so a front end can add its own metrics to the same `/metrics`.
    public let registry = PrometheusCollectorRegistry()
    let timeToFirstToken: DurationHistogram
    let interTokenLatency: DurationHistogram
    let requestLatency: DurationHistogram
    let requestsInFlight: Gauge
    let promptTokens: Counter
    let generatedTokens: Counter
    let prefixQueriedTokens: Counter
    let prefixHitTokens: Counter
    let running: Gauge
    let waiting: Gauge
    let kvBlocksUsed: Gauge
    let kvBlocksTotal: Gauge
    /// Text in Prometheus' format added after the registry's at each
    /// scrape (the router's cache counters, summed from its members).
    public var appendix: @Sendable () -> String = { "" }

    public init() {
        let fast: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]
        let slow: [Duration] = [.milliseconds(100), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300)]
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "loom", metricName: metric, unitName: unit, helpText: help)
        }
        timeToFirstToken = registry.makeDurationHistogram(descriptor: name("time_to_first_token", "seconds", "Request arrival to the first generated token"), buckets: fast)
        interTokenLatency = registry.makeDurationHistogram(descriptor: name("inter_token_latency", "seconds", "Time between consecutive tokens of one choice"), buckets: fast)
        requestLatency = registry.makeDurationHistogram(descriptor: name("e2e_request_latency", "seconds", "Request arrival to the last token of a choice"), buckets: slow)
        requestsInFlight = registry.makeGauge(descriptor: name("requests_in", "flight", "Generation requests being served over HTTP"))
        promptTokens = registry.makeCounter(descriptor: name("prompt_tokens", "total", "Prompt tokens of accepted requests"))
        generatedTokens = registry.makeCounter(descriptor: name("generation_tokens", "total", "Tokens generated"))
        prefixQueriedTokens = registry.makeCounter(descriptor: name("prefix_cache_queried_tokens", "total", "Prompt tokens looked up in the prefix cache"))
        prefixHitTokens = registry.makeCounter(descriptor: name("prefix_cache_hit_tokens", "total", "Prompt tokens served from the prefix cache"))

        running = registry.makeGauge(descriptor: name("running", "requests", "Sequences in the running batch"))
        waiting = registry.makeGauge(descriptor: name("waiting", "requests", "Accepted requests waiting for a running slot"))
        kvBlocksUsed = registry.makeGauge(descriptor: name("kv_blocks", "used", "KV-pool blocks referenced by sequences"))
        kvBlocksTotal = registry.makeGauge(descriptor: name("kv_blocks", "total", "KV-pool blocks in all"))
    }

    /// Renders the registry after refreshing the gauges from `load`, so a
    /// scrape always sees the engine's state as of its last step.
    public func render(load: EngineSnapshot) -> [UInt8] {
        running.set(Int64(load.running))
        waiting.set(Int64(load.waiting))
        kvBlocksUsed.set(Int64(load.usedBlocks))
        kvBlocksTotal.set(Int64(load.blockCount))
        return registry.emitToBuffer() + Array(appendix().utf8)
    }
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
