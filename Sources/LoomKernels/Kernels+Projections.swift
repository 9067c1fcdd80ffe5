import CLoomKernels

extension Kernels {
    /// One of several matrices applied to the same input, and where its
    /// outputs go (`output[t * ldy + r]`).
    public struct Projection {
        public let weights: WeightMatrix
        public let output: UnsafeMutablePointer<Float>
        public let ldy: Int

        public init(_ weights: WeightMatrix, into output: UnsafeMutablePointer<Float>, ldy: Int) {
            self.weights = weights
            self.output = output
            self.ldy = ldy
        }
    }

    /// `matmul` of one input by several matrices (Q, K and V; gate and up).
    /// When all are packed with one type and width, the input is quantized
    /// once and all their rows run in one pass over the pool: a decode step
    /// has hundreds of small matmuls, and each pass costs a hand-off and a
    /// wait for the slowest thread.
    public static func matmul(
        _ projections: [Projection], _ x: UnsafePointer<Float>, ldx: Int, tokens: Int,
        rounded: UnsafeMutablePointer<Float>, parallel: Parallel
    ) {
        guard let first = projections.first?.weights else { return }
        guard projections.allSatisfy({ $0.weights.packed != nil && $0.weights.type == first.type && $0.weights.cols == first.cols }) else {
            for p in projections {
                matmul(p.weights, x, ldx: ldx, tokens: tokens, into: p.output, ldy: p.ldy, rounded: rounded, parallel: parallel)
            }
            return
        }
        let input = quantize(x, ldx: ldx, tokens: tokens, cols: first.cols, into: UnsafeMutableRawPointer(rounded), parallel: parallel)
        var starts: [Int] = []
        var total = 0
        for p in projections {
            starts.append(total)
            total += p.weights.rows
        }
        // Slice bounds are multiples of 16 and every start a multiple of 8
        // (packed matrices have whole groups), so local bounds stay on groups.
        parallel.forEachSlice(total, granularity: 16) { rows in
            for (p, start) in zip(projections, starts) {
                let lower = max(rows.lowerBound, start), upper = min(rows.upperBound, start + p.weights.rows)
                guard lower < upper else { continue }
                loom_matmul_packed(
                    Int32(first.type), p.weights.packed, Int64(first.cols), input, Int64(tokens),
                    p.output, Int64(p.ldy), Int64(lower - start), Int64(upper - start), 1)
            }
        }
    }
}
