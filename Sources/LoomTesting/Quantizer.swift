import LoomKernels
import LoomModel

/// Reference quantizers for building tiny test models: plain round-to-nearest
/// with one scale per block, no search for better scales. The 32-element
/// block types follow ggml's reference quantizers step for step (same scale
/// choice, same float operations), so their output can be checked against
/// fixtures made by the `gguf` Python package.
///
/// Inputs must be finite and within the F16 range (|x| <= 65504) for the
/// block types, since their scales are stored as F16.
public enum Quantizer {
    public static let supportedTypes: [GGMLType] = [
        .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K,
    ]

    /// Encodes `values` as `type`; `values.count` must be a multiple of the
    /// type's block size.
    public static func quantize(_ values: [Float], as type: GGMLType) -> [UInt8] {
        precondition(values.count % type.blockSize == 0,
                     "\(values.count) values is not a multiple of the \(type.name) block size \(type.blockSize)")
        var out: [UInt8] = []
        out.reserveCapacity(type.byteCount(elements: values.count))
        switch type {
        case .f32: for v in values { out.appendLE(v.bitPattern) }
        case .f16: for v in values { out.appendLE(Kernels.floatToHalf(v)) }
        case .bf16: for v in values { out.appendLE(bfloat16(v)) }
        default:
            let block = type.blockSize
            for start in stride(from: 0, to: values.count, by: block) {
                quantizeBlock(values[start..<(start + block)], as: type, into: &out)
            }
        }
        assert(out.count == type.byteCount(elements: values.count))
        return out
    }

    private static func quantizeBlock(_ x: ArraySlice<Float>, as type: GGMLType, into out: inout [UInt8]) {
        switch type {
        case .q8_0: q8_0(x, into: &out)
        case .q4_0: symmetric(x, levels: 16, into: &out)
        case .q5_0: symmetric(x, levels: 32, into: &out)
        case .q4_1: affine(x, levels: 16, into: &out)
        case .q5_1: affine(x, levels: 32, into: &out)
        case .q4_K: q4_K(x, into: &out)
        case .q5_K: q5_K(x, into: &out)
        case .q6_K: q6_K(x, into: &out)
        default: preconditionFailure("Quantizer cannot encode \(type.name)")
        }
    }

    /// Round to nearest even, and NaN kept a quiet NaN, as ggml converts.
    static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7fff_ffff > 0x7f80_0000 {
            return UInt16((bits >> 16) | 0x40)
        }
        let rounded = UInt64(bits) + 0x7fff + UInt64((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// Q8_0: d = max|x| / 127, q = round(x / d), rounding half away from zero.
    private static func q8_0(_ x: ArraySlice<Float>, into out: inout [UInt8]) {
        let amax = x.reduce(Float(0)) { max($0, abs($1)) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        out.appendLE(Kernels.floatToHalf(d))
        for v in x {
            out.append(UInt8(bitPattern: Int8(clampedRound(v * id, -127, 127))))
        }
    }

    /// Q4_0 and Q5_0: the value of largest magnitude maps to the most negative
    /// level, keeping its sign, so the full range of levels is used; the
    /// opposite extreme is clipped one step short.
    private static func symmetric(_ x: ArraySlice<Float>, levels: Int, into out: inout [UInt8]) {
        var extreme: Float = 0
        for v in x where abs(v) > abs(extreme) { extreme = v }
        let half = Float(levels / 2)
        let d = extreme / -half
        let id: Float = d == 0 ? 0 : 1 / d
        let q = x.map { UInt8(clampedTrunc($0 * id + (half + 0.5), 0, levels - 1)) }
        out.appendLE(Kernels.floatToHalf(d))
        packNibbles(q, highBits: levels > 16, into: &out)
    }

    /// Q4_1 and Q5_1: levels spread evenly from the block's min to its max.
    private static func affine(_ x: ArraySlice<Float>, levels: Int, into out: inout [UInt8]) {
        let low = x.min() ?? 0
        let high = x.max() ?? 0
        let d = (high - low) / Float(levels - 1)
        let id: Float = d == 0 ? 0 : 1 / d
        let q = x.map { UInt8(clampedTrunc(($0 - low) * id + 0.5, 0, levels - 1)) }
        out.appendLE(Kernels.floatToHalf(d))
        out.appendLE(Kernels.floatToHalf(low))
        packNibbles(q, highBits: levels > 16, into: &out)
    }

    /// The 32-element layouts: for 5-bit types a 32-bit mask of fifth bits
    /// (bit j for element j) first, then element j's low nibble with element
    /// j + 16's in the high half of byte j.
    private static func packNibbles(_ q: [UInt8], highBits: Bool, into out: inout [UInt8]) {
        if highBits {
            var mask: UInt32 = 0
            for (j, level) in q.enumerated() { mask |= UInt32(level >> 4) << UInt32(j) }
            out.appendLE(mask)
        }
        for j in 0..<16 {
            out.append((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4)
        }
    }

    /// `value.rounded()` clamped to `low...high`; NaN (0 * inf from a scale
    /// that underflowed) counts as 0.
    static func clampedRound(_ value: Float, _ low: Int, _ high: Int) -> Int {
        clampToInt(value.rounded(), low, high)
    }

    static func clampedTrunc(_ value: Float, _ low: Int, _ high: Int) -> Int {
        clampToInt(value.rounded(.towardZero), low, high)
    }

    private static func clampToInt(_ value: Float, _ low: Int, _ high: Int) -> Int {
        if value.isNaN { return min(max(0, low), high) }
        return Int(min(max(value, Float(low)), Float(high)))
    }

    /// The smallest F16 not below `value` (value >= 0), so a scale derived
    /// from it never leaves the largest input outside the representable range.
    static func halfAtLeast(_ value: Float) -> UInt16 {
        let bits = Kernels.floatToHalf(value)
        return Kernels.halfToFloat(bits) < value ? bits + 1 : bits
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
