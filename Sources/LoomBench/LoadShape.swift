/// How requests are released.
public enum LoadShape: Equatable, Sendable {
    /// Closed loop: this many clients, each sending its next request as
    /// soon as its last one ends.
    case closed(concurrency: Int)
    /// Open loop: Poisson arrivals at this many requests per second,
    /// whether or not earlier requests have finished.
    case open(rate: Double)

    public var concurrency: Int? {
        if case .closed(let c) = self { return c }
        return nil
    }

    public var rate: Double? {
        if case .open(let r) = self { return r }
        return nil
    }

    /// Send times in seconds from the start of an open-loop run; the first
    /// request goes at once. Seeded apart from the prompts so that changing
    /// the rate does not change what is asked.
    public static func poissonArrivals(count: Int, rate: Double, seed: UInt64) -> [Double] {
        var rng = SeededRandom(seed: seed ^ 0xA5A5_5A5A_DEAD_BEEF)
        var time = 0.0
        return (0..<count).map { index in
            if index > 0 { time += rng.exponential(rate: rate) }
            return time
        }
    }
}
