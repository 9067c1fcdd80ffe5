import Prometheus

/// What the router adds to `/metrics`: KV moved between workers, how long
/// the moves took, and what routing decided.
public struct RouterMetrics: Sendable {
    let blocksTransferred: Counter
    let bytesTransferred: Counter
    let transferTime: DurationHistogram
    let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        blocksTransferred = registry.makeCounter(name: "loom_kv_blocks_transferred_total", help: "KV blocks prefill workers wrote into decode workers")
        bytesTransferred = registry.makeCounter(name: "loom_kv_bytes_transferred_total", help: "Bytes of KV prefill workers wrote into decode workers")
        transferTime = registry.makeDurationHistogram(
            name: "loom_kv_transfer_seconds",
            buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1)],
            help: "Time a prefill worker spent writing one request's KV into its decode worker")
    }

    func transferred(blocks: Int, bytes: Int, microseconds: UInt64) {
        blocksTransferred.increment(by: Int64(blocks))
        bytesTransferred.increment(by: Int64(bytes))
        transferTime.record(.microseconds(Int64(clamping: microseconds)))
    }

    /// One counter per outcome: local/remote prefill, prefix hit/miss, retry.
    func decided(_ outcome: String) {
        registry.makeCounter(name: "loom_routing_decisions_total", labels: [("outcome", outcome)], help: "Routing decisions by outcome").increment()
    }
}
