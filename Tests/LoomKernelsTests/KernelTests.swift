import CLoomKernels
import Foundation
import LoomKernels
import LoomTesting
import Testing

private func randomVector(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var g = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float.random(in: -scale...scale, using: &g) }
}

@Suite struct KernelTests {
    @Test func dotMatchesNaiveSumForEveryLength() {
        for n in [0, 1, 7, 15, 16, 17, 33, 576] {
            let a = randomVector(n, seed: 1), b = randomVector(n, seed: 2)
            let naive = zip(a, b).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            #expect(abs(Double(Kernels.dot(a, b, count: n)) - naive) < 1e-4)
        }
    }

    @Test func rmsNormScalesToUnitRootMeanSquare() {
        let x = randomVector(64, seed: 3, scale: 5), weight = [Float](repeating: 2, count: 64)
        var out = [Float](repeating: 0, count: 64)
        Kernels.rmsNorm(x, weight: weight, into: &out, count: 64, eps: 0)
        let rms = (out.reduce(0) { $0 + $1 * $1 } / 64).squareRoot()
        #expect(abs(rms - 2) < 1e-4)
        #expect(zip(x, out).allSatisfy { ($0 < 0) == ($1 < 0) })
    }

    @Test func softmaxSumsToOneAndKeepsOrder() {
        var x: [Float] = [1, 3, 2, -50]
        Kernels.softmax(&x, count: 4)
        #expect(abs(x.reduce(0, +) - 1) < 1e-6)
        #expect(x[1] > x[2] && x[2] > x[0] && x[0] > x[3])
    }

    @Test func swigluIsSiluTimesUp() {
        var g: [Float] = [0, 1, -2], u: [Float] = [3, 4, 5]
        Kernels.swiglu(&g, u, count: 3)
        let expected = [Float(0), 4 / (1 + exp(-1)), 5 * -2 / (1 + exp(2))]
        for (a, b) in zip(g, expected) { #expect(abs(a - b) < 1e-6) }
    }

    /// Rotation preserves each pair's norm and is the identity at position 0;
    /// the two styles pair different dimensions.
    @Test func ropeRotatesThePairsEachStyleNames() {
        let original = randomVector(16, seed: 4)
        var zero = original
        loom_rope(&zero, 1, 16, 16, 0, 10_000, 1, 0, nil)
        #expect(zero == original)
        var interleaved = original, halves = original
        loom_rope(&interleaved, 1, 16, 16, 5, 10_000, 1, 0, nil)
        loom_rope(&halves, 1, 16, 16, 5, 10_000, 1, 1, nil)
        func norm(_ v: [Float], _ a: Int, _ b: Int) -> Float { (v[a] * v[a] + v[b] * v[b]).squareRoot() }
        for i in 0..<8 {
            #expect(abs(norm(interleaved, 2 * i, 2 * i + 1) - norm(original, 2 * i, 2 * i + 1)) < 1e-5)
            #expect(abs(norm(halves, i, i + 8) - norm(original, i, i + 8)) < 1e-5)
        }
        // First pair rotates by exactly 5 radians.
        let (c, s) = (Float(cos(5.0)), Float(sin(5.0)))
        #expect(abs(interleaved[0] - (original[0] * c - original[1] * s)) < 1e-5)
        #expect(abs(halves[8] - (original[0] * s + original[8] * c)) < 1e-5)
    }

    @Test func ropeFrequencyFactorsSlowDownRotation() {
        let original = randomVector(4, seed: 5)
        var plain = original, factored = original, scaled = original
        let factors: [Float] = [2, 2]
        loom_rope(&plain, 1, 4, 4, 6, 10_000, 0.5, 0, nil)
        loom_rope(&factored, 1, 4, 4, 6, 10_000, 1, 0, factors)
        loom_rope(&scaled, 1, 4, 4, 3, 10_000, 1, 0, nil)
        for i in 0..<4 {
            #expect(abs(plain[i] - scaled[i]) < 1e-5)
            #expect(abs(factored[i] - scaled[i]) < 1e-5)
        }
    }

    @Test func halfConversionRoundTripsEveryFiniteHalf() {
        for bits in UInt16.min...UInt16.max where (bits & 0x7c00) != 0x7c00 {
            #expect(Kernels.floatToHalf(Kernels.halfToFloat(bits)) == bits || bits == 0x8000)
        }
    }

    /// Q8_0 rounding keeps every value within half a step of the block's scale.
    @Test func activationRoundingStaysWithinHalfAStep() {
        let x = randomVector(64, seed: 6, scale: 3)
        var out = [Float](repeating: 0, count: 64)
        loom_round_activations(Int32(LOOM_Q8_0.rawValue), x, &out, 64, nil)
        for block in 0..<2 {
            let slice = x[(block * 32)..<(block * 32 + 32)]
            let step = slice.map(abs).max()! / 127
            for j in slice.indices { #expect(abs(out[j] - x[j]) <= step * 0.51) }
        }
        loom_round_activations(Int32(LOOM_F32.rawValue), x, &out, 64, nil)
        #expect(out == x)
    }

    @Test func parallelSlicesCoverEveryIndexOnce() {
        for threads in [1, 2, 3] {
            let parallel = Parallel(threads: threads)
            for count in [0, 1, 5, 16, 17, 100] {
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
                hits.initialize(repeating: 0, count: max(count, 1))
                defer { hits.deallocate() }
                parallel.forEachSlice(count, granularity: 4) { range in
                    for i in range { hits[i] += 1 }
                }
                #expect((0..<count).allSatisfy { hits[$0] == 1 })
            }
        }
    }
}
