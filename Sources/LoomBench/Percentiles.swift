/// p50 / p90 / p99 of a set of samples.
public struct Percentiles: Equatable, Sendable, Encodable {
    public var p50: Double
    public var p90: Double
    public var p99: Double

    public init(p50: Double, p90: Double, p99: Double) {
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
    }

    /// `nil` when there are no samples: a run where every request failed has
    /// no latency, and printing 0 would read as "fast".
    public init?(_ samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        self.init(
            p50: Self.percentile(sorted, 50), p90: Self.percentile(sorted, 90),
            p99: Self.percentile(sorted, 99))
    }

    /// Linear interpolation between closest ranks (numpy's default), so
    /// figures match what vLLM's and SGLang's benchmark scripts print for
    /// the same samples.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        precondition(!sorted.isEmpty, "percentile of no samples")
        precondition((0...100).contains(p), "percentile outside 0...100")
        let rank = p / 100 * Double(sorted.count - 1)
        let lower = Int(rank.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let fraction = rank - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }

    public func scaled(by factor: Double) -> Percentiles {
        Percentiles(p50: p50 * factor, p90: p90 * factor, p99: p99 * factor)
    }
}
