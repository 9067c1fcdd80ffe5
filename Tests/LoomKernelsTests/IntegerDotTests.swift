import CLoomKernels
import LoomKernels
import LoomModel
import LoomTesting
import Testing

/// The integer kernels must compute what the float reference path computes
/// (activations rounded as llama.cpp rounds them, weights dequantized, float
/// dot, Q8_1 sum fix) up to summation order, and the AVX2 and portable paths
/// must agree bit for bit since both follow ggml's lane order.
@Suite struct IntegerDotTests {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q8_0]

    @Test(arguments: types)
    func integerMatmulMatchesFloatReference(type: GGMLType) {
        let rows = 7, cols = 160, tokens = 11  // a full 8-token group and a tail
        var g = SeededGenerator(seed: UInt64(type.rawValue))
        let weights = Quantizer.quantize((0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &g) }, as: type)
        // Shift some activations so Q8_1's per-block sums are far from zero.
        let x = (0..<(tokens * cols)).map { i in Float.random(in: -2...2, using: &g) + (i % 64 < 32 ? 0.7 : 0) }
        let reference = floatPath(type, weights, x, rows: rows, cols: cols, tokens: tokens)
        let simd = integerPath(type, weights, x, rows: rows, cols: cols, tokens: tokens, simd: true)
        let portable = integerPath(type, weights, x, rows: rows, cols: cols, tokens: tokens, simd: false)
        #expect(simd == portable)
        let scale = reference.map(abs).max()!
        for (a, b) in zip(simd, reference) { #expect(abs(a - b) <= 1e-5 * scale) }
    }

    /// The eight-row layout: its AVX2 and portable kernels agree bit for bit,
    /// stay within rounding of the float reference, and a slice of rows
    /// computes exactly the rows the whole matrix gives.
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q8_0])
    func packedMatmulMatchesFloatReference(type: GGMLType) {
        let rows = 24, cols = 160
        var g = SeededGenerator(seed: 40 + UInt64(type.rawValue))
        let weights = Quantizer.quantize((0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &g) }, as: type)
        var packed = [UInt8](repeating: 0, count: weights.count)
        loom_pack(Int32(type.rawValue), weights, Int64(rows), Int64(cols), &packed)
        let rowBytes = weights.count / rows
        for row in [0, 5, 13, 23] {
            var unpacked = [UInt8](repeating: 0, count: rowBytes)
            loom_unpack_row(Int32(type.rawValue), packed, Int64(cols), Int64(row), &unpacked)
            #expect(unpacked == Array(weights[(row * rowBytes)..<((row + 1) * rowBytes)]))
        }
        for tokens in [1, 3, 4, 13] {
            let x = (0..<(tokens * cols)).map { i in Float.random(in: -2...2, using: &g) + (i % 64 < 32 ? 0.7 : 0) }
            let blocks = quantized(x, tokens: tokens, cols: cols)
            func run(simd: Int32, rows range: Range<Int>) -> [Float] {
                var y = [Float](repeating: .nan, count: tokens * rows)
                loom_matmul_packed(Int32(type.rawValue), packed, Int64(cols), blocks, Int64(tokens), &y, Int64(rows),
                                   Int64(range.lowerBound), Int64(range.upperBound), simd)
                return y
            }
            let simd = run(simd: 1, rows: 0..<rows), portable = run(simd: 0, rows: 0..<rows)
            #expect(simd.map(\.bitPattern) == portable.map(\.bitPattern))
            let reference = floatPath(type, weights, x, rows: rows, cols: cols, tokens: tokens)
            let scale = reference.map(abs).max()!
            for (a, b) in zip(simd, reference) { #expect(abs(a - b) <= 1e-5 * scale) }
            let middle = run(simd: 1, rows: 8..<16)
            for t in 0..<tokens {
                let slice = (t * rows + 8)..<(t * rows + 16)
                #expect(middle[slice].map(\.bitPattern) == simd[slice].map(\.bitPattern))
                #expect(middle[(t * rows)..<(t * rows + 8)].allSatisfy { $0.isNaN })
            }
        }
    }

    @Test func quantizedActivationsAreTheRoundedOnes() {
        var g = SeededGenerator(seed: 9)
        let x = (0..<96).map { _ in Float.random(in: -3...3, using: &g) }
        var rounded = [Float](repeating: 0, count: 96), fix = [Float](repeating: 0, count: 3)
        loom_round_activations(Int32(LOOM_Q4_1.rawValue), x, &rounded, 96, &fix)
        var blocks = [loom_q8_block](repeating: loom_q8_block(), count: 3)
        loom_quantize_q8(x, &blocks, 96)
        for (b, block) in blocks.enumerated() {
            let qs = withUnsafeBytes(of: block.qs) { Array($0.bindMemory(to: Int8.self)) }
            for j in 0..<32 { #expect(Float(qs[j]) * block.d == rounded[b * 32 + j]) }
            #expect(block.s - block.d * Float(qs.reduce(0) { $0 + Int($1) }) == fix[b])
        }
    }

    @Test func vectorQuantizerMatchesThePortableOne() {
        var g = SeededGenerator(seed: 11)
        // A zero block, a block with one huge value, and ordinary ones.
        var x = (0..<(32 * 40)).map { _ in Float.random(in: -4...4, using: &g) }
        for j in 0..<32 { x[j] = 0 }
        x[40] = 3e4
        var simd = [loom_q8_block](repeating: loom_q8_block(), count: 40), portable = simd
        loom_quantize_q8_path(x, &simd, Int64(x.count), 1)
        loom_quantize_q8_path(x, &portable, Int64(x.count), 0)
        for (a, b) in zip(simd, portable) {
            #expect(a.d == b.d && a.s == b.s)
            #expect(withUnsafeBytes(of: a.qs) { Array($0) } == withUnsafeBytes(of: b.qs) { Array($0) })
            let sum = withUnsafeBytes(of: a.qs) { $0.reduce(Int32(0)) { $0 + Int32(Int8(bitPattern: $1)) } }
            #expect(a.sum == b.sum && a.sum == sum)
        }
        #expect(portable[0].d == 0 && portable[1].d > 0)
    }

    private func floatPath(_ type: GGMLType, _ w: [UInt8], _ x: [Float], rows: Int, cols: Int, tokens: Int) -> [Float] {
        var rounded = [Float](repeating: 0, count: tokens * cols), fix = [Float](repeating: 0, count: tokens * cols / 32)
        for t in 0..<tokens {
            x.withUnsafeBufferPointer { xp in
                rounded.withUnsafeMutableBufferPointer { rp in
                    fix.withUnsafeMutableBufferPointer { fp in
                        loom_round_activations(Int32(type.rawValue), xp.baseAddress! + t * cols, rp.baseAddress! + t * cols, Int64(cols), fp.baseAddress! + t * cols / 32)
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: tokens * rows), scratch = [Float](repeating: 0, count: cols)
        loom_matmul_rows(Int32(type.rawValue), w, Int64(w.count / rows), Int64(cols), rounded, Int64(cols), Int64(tokens), &y, Int64(rows), 0, Int64(rows), &scratch, fix)
        return y
    }

    private func quantized(_ x: [Float], tokens: Int, cols: Int) -> [loom_q8_block] {
        var blocks = [loom_q8_block](repeating: loom_q8_block(), count: tokens * cols / 32)
        blocks.withUnsafeMutableBufferPointer { bp in
            for t in 0..<tokens { loom_quantize_q8(Array(x[(t * cols)..<((t + 1) * cols)]), bp.baseAddress! + t * cols / 32, Int64(cols)) }
        }
        return blocks
    }

    private func integerPath(_ type: GGMLType, _ w: [UInt8], _ x: [Float], rows: Int, cols: Int, tokens: Int, simd: Bool) -> [Float] {
        let blocks = quantized(x, tokens: tokens, cols: cols)
        var y = [Float](repeating: 0, count: tokens * rows)
        loom_matmul_q8(Int32(type.rawValue), w, Int64(w.count / rows), Int64(cols), blocks, Int64(tokens), &y, Int64(rows), 0, Int64(rows), simd ? 1 : 0)
        return y
    }
}
