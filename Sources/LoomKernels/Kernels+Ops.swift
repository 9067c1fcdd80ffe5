import CLoomKernels

extension Kernels {
    /// y[t][r] = W[r] · x[t] for `tokens` input rows of `W.cols` floats
    /// (`x` rows are `ldx` apart, `y` rows `ldy` apart). `rounded` is scratch
    /// for `tokens × W.cols × 33 / 32` floats: the activations rounded as
    /// llama.cpp rounds them for this weight type, then per-block sum fixes.
    public static func matmul(
        _ w: WeightMatrix, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int, rounded: UnsafeMutablePointer<Float>,
        parallel: Parallel
    ) {
        if w.packed != nil {
            matmul([Projection(w, into: y, ldy: ldy)], x, ldx: ldx, tokens: tokens, rounded: rounded, parallel: parallel)
            return
        }
        if loom_has_int_dot(Int32(w.type)) != 0 {
            integerMatmul(w, x, ldx: ldx, tokens: tokens, into: y, ldy: ldy, scratch: UnsafeMutableRawPointer(rounded), parallel: parallel)
            return
        }
        let sumFix = rounded + tokens * w.cols, blocks = w.cols / 32
        for t in 0..<tokens {
            loom_round_activations(Int32(w.type), x + t * ldx, rounded + t * w.cols, Int64(w.cols), sumFix + t * blocks)
        }
        let x = UnsafePointer(rounded), ldx = w.cols
        // Rows are dealt in groups so each thread dequantizes whole cache lines
        // of weights and the slices stay balanced for small matrices.
        parallel.forEachSlice(w.rows, granularity: 16) { rows in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: w.cols) { scratch in
                loom_matmul_rows(
                    Int32(w.type), w.data, Int64(w.rowBytes), Int64(w.cols),
                    x, Int64(ldx), Int64(tokens), y, Int64(ldy),
                    Int64(rows.lowerBound), Int64(rows.upperBound), scratch.baseAddress, sumFix)
            }
        }
    }

    /// Quantizes each token's activations once into Q8 blocks, then every
    /// thread runs integer dot products over its rows (packed matrices go
    /// through `matmul(_:[Projection]...)`). The blocks (44 bytes per 32
    /// values) fit in the `rounded` scratch the float path sizes.
    private static func integerMatmul(
        _ w: WeightMatrix, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int,
        into y: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutableRawPointer, parallel: Parallel
    ) {
        let input = quantize(x, ldx: ldx, tokens: tokens, cols: w.cols, into: scratch, parallel: parallel)
        parallel.forEachSlice(w.rows, granularity: 16) { rows in
            loom_matmul_q8(
                Int32(w.type), w.data, Int64(w.rowBytes), Int64(w.cols), input, Int64(tokens),
                y, Int64(ldy), Int64(rows.lowerBound), Int64(rows.upperBound), 1)
        }
    }

    /// Each token's activations as Q8 blocks in `scratch`.
    static func quantize(
        _ x: UnsafePointer<Float>, ldx: Int, tokens: Int, cols: Int, into scratch: UnsafeMutableRawPointer,
        parallel: Parallel
    ) -> UnsafePointer<loom_q8_block> {
        let blocks = cols / 32
        let q8 = scratch.bindMemory(to: loom_q8_block.self, capacity: tokens * blocks)
        parallel.forEachSlice(tokens, granularity: 8) { slice in
            for t in slice { loom_quantize_q8(x + t * ldx, q8 + t * blocks, Int64(cols)) }
        }
        return UnsafePointer(q8)
    }

    public static func rmsNorm(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
        count: Int, eps: Float
    ) {
        loom_rmsnorm(x, weight, out, Int64(count), eps)
    }

    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        loom_swiglu(gate, up, Int64(count))
    }

    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        loom_softmax(x, Int64(count))
    }

    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        loom_dot_f32(a, b, Int64(count))
    }
}
