import Foundation

/// SplitMix64: tiny, fast and fully determined by its seed, so a workload and
/// an arrival schedule are the same on every machine and Swift version
/// (the standard library's `random(in:using:)` does not promise that).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound`. The multiply-shift bias is below 2^-32 for
    /// the small bounds used here, far under anything a benchmark notices.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(0) has no values")
        return Int(((next() >> 32) &* UInt64(bound)) >> 32)
    }

    public mutating func inRange(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.count)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    public mutating func pick<T>(_ items: [T]) -> T {
        items[below(items.count)]
    }

    /// An exponential gap with mean `1 / rate`: the time between arrivals
    /// of a Poisson process.
    public mutating func exponential(rate: Double) -> Double {
        precondition(rate > 0, "a Poisson rate must be positive")
        // 1 - u is in (0, 1], so the log is finite.
        return -Foundation.log(1 - unit()) / rate
    }
}
