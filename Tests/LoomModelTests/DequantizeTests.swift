import Foundation
import LoomKernels
import LoomModel
import LoomTesting
import Testing

/// Dequantization against values computed by the `gguf` Python package
/// (scripts/golden/dequant_goldens.py), from random block bytes.
///
/// Matches must be exact, bit for bit. dequantize.c performs the same float32
/// operations in the same order as the reference (Q4_K is
/// (d * sc) * q - (dmin * m), Q6_K is (d * sc) * q). Where there is an add,
/// the products before it are exact in float32 (an F16 scale has 11
/// significant bits, a 6-bit sub-scale and a level of at most 5 bits add 11
/// more: 22 < 24), so only the add rounds, and a fused multiply-add (clang
/// fuses by default on arm64) rounds the same. Checked: built with -mfma,
/// dequantize.c still matches every fixture bit for bit.
@Suite("Dequantization against gguf fixtures")
struct DequantizeTests {
    static let types = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]

    /// One entry of expected.json. Decoded with a typed decoder: the untyped
    /// FixtureJSON takes seconds over its 10k numbers in a debug build.
    struct Expected: Decodable, Sendable {
        var dims: [Int]
        var ggml_type: Int
        var values: [Double]
    }

    /// Loaded once for all test cases.
    static let expected: Result<[String: Expected], any Error> = Result {
        try JSONDecoder().decode([String: Expected].self, from: Fixtures.data("dequant/expected.json"))
    }

    @Test("the fixtures cover every type the kernels can read")
    func coverage() throws {
        let expected = try Self.expected.get()
        #expect(Set(expected.keys) == Set(Self.types))
        let kernelTypes = GGMLType.allCases.filter { $0.isSupported && $0 != .f32 }.map(\.name)
        #expect(Set(kernelTypes) == Set(Self.types))
    }

    @Test("every value matches exactly", arguments: types)
    func matchesFixture(typeName: String) throws {
        let expected = try #require(try Self.expected.get()[typeName])
        let file = try GGUFFile(path: Fixtures.url("dequant/\(typeName).gguf").path)
        let info = try file.requireTensor("t")
        #expect(info.dims == expected.dims)
        #expect(Int(info.type.rawValue) == expected.ggml_type)
        #expect(info.type.name == typeName)

        let values = try #require(
            Kernels.dequantize(type: info.type.rawValue, source: file.bytes(of: info).baseAddress!, count: info.elementCount))
        // Each value is a float32 widened to double, so narrowing is exact.
        let reference = expected.values.map { Float($0) }
        try #require(values.count == reference.count)
        let mismatches = values.indices.filter { values[$0].bitPattern != reference[$0].bitPattern }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5).map { "[\($0)] \(values[$0]) vs \(reference[$0])" })")
    }

    @Test("dequantizing one row at a time gives the same values", arguments: ["Q4_K", "Q5_1"])
    func rowByRow(typeName: String) throws {
        let file = try GGUFFile(path: Fixtures.url("dequant/\(typeName).gguf").path)
        let info = try file.requireTensor("t")
        let raw = file.bytes(of: info)
        let rowBytes = info.type.byteCount(elements: info.rowLength)
        let whole = Kernels.dequantize(type: info.type.rawValue, source: raw.baseAddress!, count: info.elementCount)
        var rows: [Float] = []
        for row in 0..<info.rowCount {
            rows += Kernels.dequantize(
                type: info.type.rawValue, source: raw.baseAddress! + row * rowBytes, count: info.rowLength) ?? []
        }
        #expect(rows == whole)
    }

    /// Our quantizers against gguf's (which follow ggml's reference ones).
    /// They need not be bit-identical, so each value is compared within half
    /// of its block's step d (read from gguf's bytes): rounding the same
    /// input with the same scale can differ only at an exact tie.
    @Test("Quantizer agrees with the gguf package", arguments: ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
    func quantizerMatchesReference(typeName: String) throws {
        let fixture = try FixtureJSON.load("dequant/\(typeName)-quantize.json")
        let type = try #require(GGMLType.allCases.first { $0.name == typeName })
        #expect(fixture["block_size"].int == type.blockSize)
        #expect(fixture["type_size"].int == type.blockBytes)
        let input = fixture["input"].floats
        let theirBytes = fixture["quantized"].ints.map(UInt8.init)
        let theirs = fixture["dequantized"].floats
        try #require(input.count == 64 && theirs.count == 64)

        let mine = Quantizer.quantize(input, as: type)
        #expect(mine.count == theirBytes.count)
        let ours = dequantize(mine, as: type, count: input.count)
        for i in input.indices {
            let blockStart = i / 32 * type.blockBytes
            let d = abs(Kernels.halfToFloat(UInt16(theirBytes[blockStart]) | UInt16(theirBytes[blockStart + 1]) << 8))
            #expect(abs(ours[i] - theirs[i]) <= d / 2, "[\(i)] \(input[i]): ours \(ours[i]), gguf \(theirs[i]), step \(d)")
        }
    }
}
