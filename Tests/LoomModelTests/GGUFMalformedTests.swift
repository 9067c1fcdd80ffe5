import Foundation
import LoomModel
import LoomTesting
import Testing

@Suite("GGUF reader: malformed values and missing things")
struct GGUFMalformedTests {
    @Test("a row length that is not a multiple of the block size")
    func rowLengthNotMultiple() throws {
        var writer = GGUFWriter()
        writer.addTensor(name: "ragged", dims: [33, 2], type: .q8_0, bytes: [UInt8](repeating: 0, count: 68))
        let error = expectGGUFError(.shapeMismatch) { _ = try Scratch.parse(writer.bytes()) }
        #expect(error?.message.contains("'ragged'") == true)
        #expect(error?.message.contains("33") == true)
    }

    @Test("an empty file")
    func emptyFile() throws {
        let error = expectGGUFError(.truncated) { _ = try Scratch.parse([], name: "empty") }
        #expect(error?.message.contains("empty") == true)
    }

    @Test("a missing file")
    func missingFile() throws {
        let path = Scratch.path("does-not-exist")
        let error = expectGGUFError(.unreadable) { _ = try GGUFFile(path: path) }
        #expect(error?.message.hasPrefix(path) == true)
    }

    @Test("requireTensor and require name what is missing")
    func missingTensorAndKey() throws {
        let file = try Scratch.parse(sampleWriter().bytes(), name: "model")
        let tensor = expectGGUFError(.missingTensor) { _ = try file.requireTensor("output.weight") }
        #expect(tensor?.message.contains("'output.weight'") == true)
        #expect(tensor?.message.hasPrefix(file.path) == true)
        let key = expectGGUFError(.missingMetadata) { _ = try file.require("llama.context_length") }
        #expect(key?.message.contains("'llama.context_length'") == true)
        #expect(file.info("output.weight") == nil)
    }

    @Test("a bool stored as 2")
    func badBool() throws {
        var writer = GGUFWriter()
        writer.set("flag", .bool(true))
        var bytes = writer.bytes()
        bytes[24 + 8 + 4 + 4] = 2
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("'flag'") == true)
    }

    @Test("unknown value types, plain and as array elements")
    func unknownValueType() throws {
        var writer = GGUFWriter()
        writer.set("k", .uint32(5))
        var plain = writer.bytes()
        plain.patch(UInt32(13), at: 24 + 9)
        #expect(expectGGUFError(.invalidValue) { _ = try Scratch.parse(plain) }?.message.contains("'k'") == true)

        var arrayWriter = GGUFWriter()
        arrayWriter.set("k", .array([.uint32(5)]))
        var inArray = arrayWriter.bytes()
        inArray.patch(UInt32(200), at: 24 + 9 + 4)
        #expect(expectGGUFError(.invalidValue) { _ = try Scratch.parse(inArray) }?.message.contains("'k'") == true)
    }

    @Test("arrays nested thousands deep are refused, not recursed into")
    func deepNesting() throws {
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(Self.nestedArrays(depth: 200_000)) }
        #expect(error?.message.contains("'deep'") == true)
        // Depths any real file could use still parse.
        let file = try Scratch.parse(Self.nestedArrays(depth: 40))
        var value = try file.require("deep")
        for _ in 0..<40 { value = try #require(value.array?.first) }
        #expect(value == .array([]))
    }

    /// One key, "deep", holding `depth` arrays each holding the next, the
    /// innermost empty.
    static func nestedArrays(depth: Int) -> [UInt8] {
        // Each level is an array header (element type 9, count 1): 12 bytes.
        var bytes = metadataOnly([])
        bytes.patch(UInt64(1), at: 16)
        bytes.appendLE(UInt64(4))
        bytes.append(contentsOf: "deep".utf8)
        bytes.appendLE(UInt32(9))
        for _ in 0..<depth {
            bytes.appendLE(UInt32(9))
            bytes.appendLE(UInt64(1))
        }
        bytes.appendLE(UInt32(0))
        bytes.appendLE(UInt64(0))
        return bytes
    }

    @Test("general.alignment must be an integer power of two",
          arguments: [GGUFValue.uint32(0), .uint32(3), .int32(-32), .uint64(1 << 63), .string("32"), .float32(32)])
    func badAlignment(value: GGUFValue) throws {
        var writer = GGUFWriter()
        writer.set("general.alignment", value)
        writer.addTensor(name: "t", dims: [8], type: .f32, values: Array(repeating: 0, count: 8))
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(writer.bytes()) }
        #expect(error?.message.contains("general.alignment") == true)
    }

    @Test("ranks outside 1...4 and zero dimensions", arguments: [0, 5])
    func badRank(rank: Int) throws {
        var writer = GGUFWriter()
        writer.addTensor(name: "odd", dims: Array(repeating: 1, count: rank), type: .f32, bytes: [0, 0, 0, 0])
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(writer.bytes()) }
        #expect(error?.message.contains("'odd'") == true)
    }

    @Test("a zero or enormous dimension", arguments: [UInt64(0), 1 << 41, .max])
    func badDimension(dim: UInt64) throws {
        var writer = GGUFWriter()
        writer.addTensor(name: "flat", dims: [32, 2], type: .f32, values: Array(repeating: 0, count: 64))
        var bytes = writer.bytes()
        let layout = try #require(TensorEntryLayout(in: bytes, name: "flat", rank: 2))
        bytes.patch(dim, at: layout.rankOffset + 4 + 8)
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("'flat'") == true)
    }
}
