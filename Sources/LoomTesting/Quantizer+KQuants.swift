import LoomKernels

/// K-quants: 256-element super-blocks whose sub-blocks carry 6-bit (Q4_K,
/// Q5_K) or 8-bit (Q6_K) scales relative to one F16 super-block scale.
///
/// Scales are rounded up, never to nearest: the super-block scale is the
/// smallest F16 that lets every sub-block scale fit its bits, and each
/// sub-block scale is the smallest multiple of it that covers the sub-block's
/// range. So no input is ever clipped, and every element is within half of
/// its sub-block's step of the input.
extension Quantizer {
    /// Levels, per-sub-block scale and min, and super-block scales of Q4_K
    /// and Q5_K, before packing: x ~ d * scales[j] * q - dmin * mins[j].
    struct AffineSuperBlock {
        var d: UInt16 = 0
        var dmin: UInt16 = 0
        var scales = [UInt8](repeating: 0, count: 8)
        var mins = [UInt8](repeating: 0, count: 8)
        var q = [UInt8](repeating: 0, count: 256)
    }

    static func affineSuperBlock(_ x: ArraySlice<Float>, maxLevel: Int) -> AffineSuperBlock {
        var block = AffineSuperBlock()
        let subBlocks = (0..<8).map { j in x.dropFirst(32 * j).prefix(32) }
        // The zero point is a non-negative offset, so a sub-block whose values
        // are all positive is measured from 0, as ggml does.
        let lows = subBlocks.map { min(0, $0.min() ?? 0) }
        let highs = subBlocks.map { $0.max() ?? 0 }

        block.dmin = halfAtLeast(-(lows.min() ?? 0) / 63)
        let dmin = Kernels.halfToFloat(block.dmin)
        block.mins = lows.map { dmin == 0 ? 0 : UInt8(clampedCeil(-$0 / dmin, 63)) }
        let offsets = block.mins.map { dmin * Float($0) }

        let spans = (0..<8).map { max(0, highs[$0] + offsets[$0]) }
        block.d = halfAtLeast((spans.max() ?? 0) / Float(63 * maxLevel))
        let d = Kernels.halfToFloat(block.d)
        block.scales = spans.map { d == 0 ? 0 : UInt8(clampedCeil($0 / (d * Float(maxLevel)), 63)) }

        for (j, sub) in subBlocks.enumerated() {
            let step = d * Float(block.scales[j])
            let inverse: Float = step == 0 ? 0 : 1 / step
            for (i, v) in sub.enumerated() {
                block.q[32 * j + i] = UInt8(clampedRound((v + offsets[j]) * inverse, 0, maxLevel))
            }
        }
        return block
    }

    /// Q4_K: d, dmin, 12 bytes of scales and mins, then for each pair of
    /// sub-blocks 32 bytes holding the first in low nibbles, the second in high.
    static func q4_K(_ x: ArraySlice<Float>, into out: inout [UInt8]) {
        let block = affineSuperBlock(x, maxLevel: 15)
        appendHeader(block, into: &out)
        for pair in 0..<4 {
            for l in 0..<32 {
                out.append(block.q[64 * pair + l] | block.q[64 * pair + 32 + l] << 4)
            }
        }
    }

    /// Q5_K: as Q4_K, with the fifth bits first: bit 2p of byte l is the high
    /// bit of element l of pair p's first sub-block, bit 2p + 1 of its second.
    static func q5_K(_ x: ArraySlice<Float>, into out: inout [UInt8]) {
        let block = affineSuperBlock(x, maxLevel: 31)
        appendHeader(block, into: &out)
        var high = [UInt8](repeating: 0, count: 32)
        var low = [UInt8](repeating: 0, count: 128)
        for pair in 0..<4 {
            for l in 0..<32 {
                let first = block.q[64 * pair + l], second = block.q[64 * pair + 32 + l]
                low[32 * pair + l] = (first & 0x0f) | (second & 0x0f) << 4
                high[l] |= (first >> 4) << UInt8(2 * pair) | (second >> 4) << UInt8(2 * pair + 1)
            }
        }
        out.append(contentsOf: high)
        out.append(contentsOf: low)
    }

    private static func appendHeader(_ block: AffineSuperBlock, into out: inout [UInt8]) {
        out.appendLE(block.d)
        out.appendLE(block.dmin)
        out.append(contentsOf: packScalesAndMins(block.scales, block.mins))
    }

    /// Eight 6-bit scales and eight 6-bit mins in 12 bytes: sub-blocks 0-3
    /// whole in bytes 0-7; sub-blocks 4-7 split into low nibbles (bytes 8-11)
    /// and top two bits (the spare top bits of bytes 0-7).
    static func packScalesAndMins(_ scales: [UInt8], _ mins: [UInt8]) -> [UInt8] {
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            packed[j] = scales[j]
            packed[j + 4] = mins[j]
        }
        for j in 4..<8 {
            packed[j + 4] = (scales[j] & 0x0f) | (mins[j] & 0x0f) << 4
            packed[j - 4] |= (scales[j] >> 4) << 6
            packed[j] |= (mins[j] >> 4) << 6
        }
        return packed
    }

    /// Q6_K: sixteen sub-blocks of 16 with signed 8-bit scales, levels
    /// -32...31 stored offset by 32 as 4 low bits (ql) and 2 high bits (qh),
    /// then the scales, then d.
    static func q6_K(_ x: ArraySlice<Float>, into out: inout [UInt8]) {
        let subBlocks = (0..<16).map { j in x.dropFirst(16 * j).prefix(16) }
        // Levels are used symmetrically (-31...31) so no sign trick is needed.
        let amaxes = subBlocks.map { $0.reduce(Float(0)) { max($0, abs($1)) } }
        let dBits = halfAtLeast((amaxes.max() ?? 0) / (31 * 127))
        let d = Kernels.halfToFloat(dBits)
        let scales = amaxes.map { d == 0 ? 0 : clampedCeil($0 / (d * 31), 127) }
        var q = [UInt8](repeating: 32, count: 256)
        for (j, sub) in subBlocks.enumerated() {
            let step = d * Float(scales[j])
            let inverse: Float = step == 0 ? 0 : 1 / step
            for (i, v) in sub.enumerated() {
                q[16 * j + i] = UInt8(clampedRound(v * inverse, -32, 31) + 32)
            }
        }
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        for half in 0..<2 {
            for l in 0..<32 {
                let e = 128 * half + l
                let (q1, q2, q3, q4) = (q[e], q[e + 32], q[e + 64], q[e + 96])
                ql[64 * half + l] = (q1 & 0x0f) | (q3 & 0x0f) << 4
                ql[64 * half + l + 32] = (q2 & 0x0f) | (q4 & 0x0f) << 4
                qh[32 * half + l] = (q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6
            }
        }
        out.append(contentsOf: ql)
        out.append(contentsOf: qh)
        out.append(contentsOf: scales.map { UInt8(truncatingIfNeeded: $0) })
        out.appendLE(dBits)
    }

    /// ceil(value) clamped to 0...high. The clamp only bites by float
    /// rounding of a quotient meant to be at most `high`.
    private static func clampedCeil(_ value: Float, _ high: Int) -> Int {
        guard value.isFinite else { return value.isNaN ? 0 : (value > 0 ? high : 0) }
        return Int(min(max(value.rounded(.up), 0), Float(high)))
    }
}
