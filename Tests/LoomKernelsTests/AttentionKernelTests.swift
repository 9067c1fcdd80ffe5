import CLoomKernels
import Foundation
import LoomTesting
import Testing

/// The AVX2 attention path against the portable one: same bits, for
/// position counts that do and do not fill the eight-position groups, over a
/// paged KV pool whose blocks are out of order.
@Suite struct AttentionKernelTests {
    @Test(arguments: [(1, 64), (8, 64), (37, 64), (100, 64), (19, 32), (23, 128)])
    func vectorPathMatchesPortableBitForBit(positions: Int, headDim: Int) {
        let heads = 9, kvHeads = 3, blockSize = 16, layers = 2
        let kvDim = kvHeads * headDim
        let blocks = (positions + blockSize - 1) / blockSize + 2
        let layerStride = 2 * blockSize * kvDim, blockStride = layers * layerStride
        var g = SeededGenerator(seed: UInt64(positions * 1000 + headDim))
        var pool = (0..<(blocks * blockStride)).map { _ in loom_f32_to_f16(Float.random(in: -2...2, using: &g)) }
        let q = (0..<(heads * headDim)).map { _ in Float.random(in: -2...2, using: &g) }
        // Blocks in reverse order, skipping block 0, so the table matters.
        let table = (0..<(blocks - 1)).map { Int32(blocks - 1 - $0) }
        func run(simd: Int32, heads range: Range<Int>) -> [Float] {
            var out = [Float](repeating: .nan, count: heads * headDim)
            var scores = [Float](repeating: 0, count: positions * 8)
            pool.withUnsafeMutableBufferPointer { pool in
                var layout = loom_kv_layout(
                    base: pool.baseAddress, block_stride: Int64(blockStride), layer_stride: Int64(layerStride),
                    block_size: Int64(blockSize), kv_dim: Int64(kvDim))
                loom_attention_path(
                    q, &layout, 1, table, Int64(positions), Int64(range.lowerBound), Int64(range.upperBound),
                    Int64(heads), Int64(kvHeads), Int64(headDim), 0.125, &scores, &out, simd)
            }
            return out
        }
        for range in [0..<heads, 2..<7] {
            let simd = run(simd: 1, heads: range), portable = run(simd: 0, heads: range)
            #expect(simd.map(\.bitPattern) == portable.map(\.bitPattern))
            #expect(simd[(range.lowerBound * headDim)..<(range.upperBound * headDim)].allSatisfy { $0.isFinite })
        }
    }
}

/// Loom's own exp and the kernels on it: close to the C library's, and the
/// AVX2 and portable paths give the same bits.
@Suite struct ExpKernelTests {
    @Test func expIsCorrectlyRoundedAlmostAlwaysAndClampsTheEnds() {
        var g = SeededGenerator(seed: 5)
        var misrounded = 0
        for _ in 0..<20_000 {
            let x = Float.random(in: -103...88.7, using: &g)
            let rounded = Float(Foundation.exp(Double(x)))
            #expect(abs(loom_expf(x) - rounded) <= rounded.ulp, "exp(\(x))")
            if loom_expf(x) != rounded { misrounded += 1 }
        }
        #expect(misrounded <= 20, "\(misrounded) of 20000 not correctly rounded")
        #expect(loom_expf(0) == 1)
        #expect(loom_expf(-105) == 0)
        #expect(loom_expf(90) == .infinity)
        #expect(loom_expf(.nan).isNaN)
    }

    @Test func vectorHalfStoreMatchesPortable() {
        var g = SeededGenerator(seed: 77)
        var x = (0..<1003).map { _ in Float.random(in: -70000...70000, using: &g) * Float.random(in: 0...1, using: &g) }
        x += [0, -0, 1e-8, -3e-6, 6.1e-5, 65504, 65520, 1e9, .infinity, -.infinity]
        var simd = [UInt16](repeating: 0, count: x.count), portable = simd
        loom_store_f16_path(&simd, x, Int64(x.count), 1)
        loom_store_f16_path(&portable, x, Int64(x.count), 0)
        #expect(simd == portable)
    }

    @Test(arguments: [1, 7, 8, 37, 300])
    func vectorSwigluAndSoftmaxMatchPortable(count: Int) {
        var g = SeededGenerator(seed: UInt64(count))
        let gate = (0..<count).map { _ in Float.random(in: -95...95, using: &g) }
        let up = (0..<count).map { _ in Float.random(in: -3...3, using: &g) }
        func swiglu(_ simd: Int32) -> [UInt32] {
            var out = gate
            loom_swiglu_path(&out, up, Int64(count), simd)
            return out.map(\.bitPattern)
        }
        #expect(swiglu(1) == swiglu(0))
        let logits = (0..<count).map { _ in Float.random(in: -30...30, using: &g) }
        func softmax(_ simd: Int32) -> [Float] {
            var out = logits
            loom_softmax_path(&out, Int64(count), simd)
            return out
        }
        let simd = softmax(1), portable = softmax(0)
        #expect(simd.map(\.bitPattern) == portable.map(\.bitPattern))
        #expect(abs(simd.reduce(0, +) - 1) < 1e-5)
    }
}
