import Testing
@testable import LoomBench

@Suite struct PercentilesTests {
    /// Values from numpy.percentile(range(1, 11), [50, 90, 99]).
    @Test func matchesNumpyLinearInterpolation() throws {
        let p = try #require(Percentiles((1...10).map(Double.init).shuffled()))
        #expect(p.p50 == 5.5)
        #expect(abs(p.p90 - 9.1) < 1e-12)
        #expect(abs(p.p99 - 9.91) < 1e-12)
    }

    @Test func oneSampleIsEveryPercentile() {
        #expect(Percentiles([42]) == Percentiles(p50: 42, p90: 42, p99: 42))
    }

    @Test func noSamplesIsNoPercentiles() {
        #expect(Percentiles([]) == nil)
    }

    @Test func extremesAreMinAndMax() {
        let sorted = [3.0, 7, 8, 20]
        #expect(Percentiles.percentile(sorted, 0) == 3)
        #expect(Percentiles.percentile(sorted, 100) == 20)
        #expect(Percentiles.percentile(sorted, 50) == 7.5)
    }

    @Test func scalingConvertsUnits() {
        #expect(Percentiles(p50: 0.5, p90: 1, p99: 2).scaled(by: 1000) == Percentiles(p50: 500, p90: 1000, p99: 2000))
    }
}
