import Foundation
import LoomKernels
import LoomModel
import LoomTesting
import Testing

func dequantize(_ bytes: [UInt8], as type: GGMLType, count: Int) -> [Float] {
    bytes.withUnsafeBytes { raw in
        Kernels.dequantize(type: type.rawValue, source: raw.baseAddress!, count: count) ?? []
    }
}

/// Largest error of storing `value` as F16: half an ulp, relative 2^-11 for
/// normal values and absolute 2^-25 among subnormals.
func f16Error(_ value: Float) -> Float {
    max(abs(value) * 0x1p-11, 0x1p-25)
}

/// Test inputs: blocks of 32 with magnitudes from 1e-3 to 30, every third one
/// shifted all-positive, then blocks that stress scale choice: zeros,
/// constants of either sign, a lone spike, F16-subnormal scales, and values
/// near the F16 limit. 1280 values: five 256-element super-blocks.
func quantizerInputs(seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    var values: [Float] = []
    for block in 0..<32 {
        let scale: Float = [1e-3, 0.05, 1, 30].randomElement(using: &rng)!
        let shift: Float = block % 3 == 0 ? 2 * scale : 0
        for _ in 0..<32 { values.append(Float.random(in: -1...1, using: &rng) * scale + shift) }
    }
    let special: [[Float]] = [
        Array(repeating: 0, count: 32),
        Array(repeating: 0.7, count: 32),
        Array(repeating: -0.7, count: 32),
        Array(repeating: 0, count: 31) + [5],
        (0..<32).map { $0 % 2 == 0 ? 1e-3 : -1e-3 },
        (0..<32).map { Float($0) * 1e-6 },
        (0..<32).map { Float($0 - 16) * 1000 },
        (0..<32).map { $0 % 2 == 0 ? 60000 : -60000 + Float($0) },
    ]
    return values + special.joined()
}

/// The largest error a round-to-nearest encoding of `x[i]` may have, per
/// format: half a quantization step of the element's (sub-)block, plus what
/// storing scales as F16 adds. Derivations are in the comments of each case.
func quantizationTolerance(_ x: [Float], _ i: Int, _ type: GGMLType) -> Float {
    func block(_ size: Int) -> ArraySlice<Float> { x[(i / size * size)..<(i / size * size + size)] }
    func amax(_ s: ArraySlice<Float>) -> Float { s.reduce(0) { max($0, abs($1)) } }
    let eps = 1e-6 * amax(block(256 <= x.count ? 256 : 32)) + 1e-30
    switch type {
    case .f32: return 0
    case .f16: return f16Error(x[i])
    case .bf16: return abs(x[i]) * 0x1p-8  // bf16 keeps 8 significant bits
    case .q8_0:
        // step d = amax / 127; the F16 scale moves a level q by at most 127 * its error.
        let d = amax(block(32)) / 127
        return d / 2 + 127 * f16Error(d) + eps
    case .q4_0, .q5_0:
        // The largest magnitude takes level -half, so the opposite extreme is
        // clipped at half - 1: a full step for values beyond (half - 1) * d.
        let half: Float = type == .q4_0 ? 8 : 16
        let d = amax(block(32)) / half
        let rounding = abs(x[i]) > (half - 1) * d ? d : d / 2
        return rounding + half * f16Error(d) + eps
    case .q4_1, .q5_1:
        let s = block(32), levels: Float = type == .q4_1 ? 15 : 31
        let d = (s.max()! - s.min()!) / levels
        return d / 2 + levels * f16Error(d) + f16Error(s.min()!) + eps
    case .q4_K, .q5_K: return kQuantTolerance(x, i, maxLevel: type == .q4_K ? 15 : 31) + eps
    case .q6_K:
        // d >= max amax / (31 * 127), rounded up to an F16; each sub-block's
        // step is its amax / 31 rounded up to a multiple of d.
        let d = amax(block(256)) / (31 * 127) * 1.001 + 0x1p-24
        return (amax(block(16)) / 31 + d) / 2 + eps
    default: preconditionFailure()
    }
}

/// Q4_K/Q5_K: a sub-block spans [lo, hi] with lo = min(0, min x). The min is
/// rounded up to a multiple of dmin (<= R / 63), the step up to a multiple of
/// d (<= R' / (63 * maxLevel)), so step <= (hi - lo + dmin) / maxLevel + d.
func kQuantTolerance(_ x: [Float], _ i: Int, maxLevel: Int) -> Float {
    let superStart = i / 256 * 256, subStart = i / 32 * 32
    let subs = stride(from: superStart, to: superStart + 256, by: 32).map { x[$0..<($0 + 32)] }
    let ranges = subs.map { $0.max()! - min(0, $0.min()!) }
    let r = ranges.max()!
    let m = Float(maxLevel)
    let dmin = r / 63 * 1.001 + 0x1p-24
    let d = (r + dmin) / (63 * m) * 1.001 + 0x1p-24
    let sub = x[subStart..<(subStart + 32)]
    let step = (sub.max()! - min(0, sub.min()!) + dmin) / m + d
    return step / 2
}

@Suite("Quantizer")
struct QuantizerTests {
    @Test("dequantize(quantize(x)) is within half a step of x", arguments: Quantizer.supportedTypes)
    func roundTrip(type: GGMLType) throws {
        for seed: UInt64 in [7, 8, 9] {
            let x = quantizerInputs(seed: seed)
            let bytes = Quantizer.quantize(x, as: type)
            #expect(bytes.count == type.byteCount(elements: x.count))
            let y = dequantize(bytes, as: type, count: x.count)
            try #require(y.count == x.count)
            var failures = 0
            for i in x.indices where abs(y[i] - x[i]) > quantizationTolerance(x, i, type) {
                failures += 1
                if failures <= 5 {
                    Issue.record("\(type.name) seed \(seed) [\(i)]: \(x[i]) -> \(y[i]), tolerance \(quantizationTolerance(x, i, type))")
                }
            }
            #expect(failures == 0)
        }
    }

    @Test("zeros come back as exact zeros", arguments: Quantizer.supportedTypes)
    func zeros(type: GGMLType) {
        let y = dequantize(Quantizer.quantize(Array(repeating: 0, count: 512), as: type), as: type, count: 512)
        #expect(y == Array(repeating: 0, count: 512))
    }

    @Test("values already on the grid come back exactly", arguments: [GGMLType.q4_0, .q4_1])
    func onGrid(type: GGMLType) {
        // Every block holds -2 and 1.75, so both pick the step 0.25 exactly.
        let x = (0..<256).map { Float($0 % 16 - 8) * 0.25 }
        let y = dequantize(Quantizer.quantize(x, as: type), as: type, count: x.count)
        #expect(y == x)
    }

    /// F16 scales and tensors go through Kernels.floatToHalf; check it on
    /// every finite half and at every rounding boundary between two of them.
    @Test("F16 conversion is exact on halves and rounds ties to even")
    func halfConversion() {
        var failures: [UInt16] = []
        for bits in UInt16(0)...UInt16.max where bits & 0x7c00 != 0x7c00 {
            if Kernels.floatToHalf(Kernels.halfToFloat(bits)) != bits { failures.append(bits) }
            // Midpoints to the next half up in magnitude (65504's is 65520,
            // which must round to infinity, 0x7c00, the even neighbour).
            let low = Kernels.halfToFloat(bits), high = Kernels.halfToFloat(bits + 1)
            let mid = bits & 0x7fff == 0x7bff ? (low < 0 ? -65520 : 65520) : (low + high) / 2
            let even = bits & 1 == 0 ? bits : bits + 1
            let outward = low.sign == .minus ? mid.nextDown : mid.nextUp
            let inward = low.sign == .minus ? mid.nextUp : mid.nextDown
            if Kernels.floatToHalf(mid) != even || Kernels.floatToHalf(outward) != bits + 1
                || Kernels.floatToHalf(inward) != bits
            {
                failures.append(bits)
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5))")
    }

    @Test("BF16 rounds to nearest even and keeps NaN quiet")
    func bfloat16Rounding() {
        let x: [Float] = [1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, -.infinity, .nan]
        let bits = Quantizer.quantize(x, as: .bf16)
        #expect(bits == [0x80, 0x3f, 0x82, 0x3f, 0x80, 0xff, 0xc0, 0x7f])
    }
}
