import Foundation
import LoomModel
import LoomTesting
import Testing

/// Metadata of every GGUF value type, with the edge values of each, in the
/// order they are written.
let everyValueType: [(String, GGUFValue)] = [
    ("test.uint8", .uint8(.max)),
    ("test.int8", .int8(.min)),
    ("test.uint16", .uint16(0xbeef)),
    ("test.int16", .int16(-12345)),
    ("test.uint32", .uint32(.max)),
    ("test.int32", .int32(.min)),
    ("test.float32", .float32(-0.0)),
    ("test.float32.inf", .float32(-.infinity)),
    ("test.float32.nan", .float32(Float(bitPattern: 0x7fc0_1234))),
    ("test.bool.true", .bool(true)),
    ("test.bool.false", .bool(false)),
    ("test.string", .string("héllo ▁wörld 🦙")),
    ("test.string.empty", .string("")),
    ("test.uint64", .uint64(.max)),
    ("test.int64", .int64(.min)),
    ("test.float64", .float64(.pi)),
    ("test.float64.tiny", .float64(.leastNonzeroMagnitude)),
    ("test.array.empty", .array([])),
    ("test.array.uint8", .array([.uint8(0), .uint8(255)])),
    ("test.array.int8", .array([.int8(-128), .int8(127)])),
    ("test.array.uint16", .array([.uint16(1), .uint16(65535)])),
    ("test.array.int16", .array([.int16(-1)])),
    ("test.array.uint32", .array([.uint32(7), .uint32(8), .uint32(9)])),
    ("test.array.int32", .array([.int32(-7), .int32(1 << 30)])),
    ("test.array.float32", .array([.float32(1.5), .float32(-2.25), .float32(.greatestFiniteMagnitude)])),
    ("test.array.bool", .array([.bool(true), .bool(false), .bool(true)])),
    ("test.array.string", .array([.string("a"), .string(""), .string("<|im_start|>")])),
    ("test.array.uint64", .array([.uint64(1 << 63)])),
    ("test.array.int64", .array([.int64(-1), .int64(.max)])),
    ("test.array.float64", .array([.float64(-1e300), .float64(2.5)])),
    ("test.array.nested", .array([
        .array([.string("x"), .string("y")]),
        .array([]),
        .array([.string("z")]),
    ])),
    // Inner arrays each carry their own element type.
    ("test.array.nested.mixed", .array([
        .array([.int32(1), .int32(2)]),
        .array([.float64(0.5)]),
        .array([.array([.bool(true)])]),
    ])),
]

/// A small file with several tensor types and ranks, for round trips and for
/// the fuzz test.
func sampleWriter(version: UInt32 = 3, alignment: Int = 32) -> GGUFWriter {
    var writer = GGUFWriter(version: version, alignment: alignment)
    writer.set("general.architecture", .string("llama"))
    writer.set("llama.block_count", .uint32(1))
    writer.set("tokenizer.ggml.tokens", .array([.string("<s>"), .string("a"), .string("b")]))
    writer.set("tokenizer.ggml.scores", .array([.float32(0), .float32(-1), .float32(-2)]))
    writer.set("test.nested", .array([.array([.int8(-1)]), .array([.int8(2), .int8(3)])]))
    writer.addTensor(name: "norm", dims: [8], type: .f32, values: (0..<8).map { Float($0) / 8 })
    writer.addTensor(name: "emb", dims: [32, 3], type: .f16, values: (0..<96).map { Float($0) / 16 - 3 })
    writer.addTensor(name: "proj", dims: [32, 2], type: .q8_0, values: (0..<64).map { sin(Float($0)) })
    writer.addTensor(name: "kq", dims: [256, 1, 1, 1], type: .q4_K, values: (0..<256).map { cos(Float($0) / 7) })
    return writer
}

@Suite("GGUF writer to reader round trip")
struct GGUFRoundTripTests {
    @Test("every metadata value type survives, in order", arguments: [UInt32(2), 3])
    func metadataRoundTrip(version: UInt32) throws {
        var writer = GGUFWriter(version: version)
        for (key, value) in everyValueType { writer.set(key, value) }
        let file = try Scratch.parse(writer.bytes(), name: "metadata-v\(version)")

        #expect(file.version == version)
        #expect(file.metadataKeys == everyValueType.map(\.0))
        for (key, value) in everyValueType {
            let read = try file.require(key)
            #expect(identical(read, value), "\(key): wrote \(value), read \(read)")
        }
        #expect(file.tensors.isEmpty)
        #expect(file.alignment == 32)
    }

    @Test("setting a key again replaces it in place")
    func replaceKeepsOrder() throws {
        var writer = GGUFWriter()
        writer.set("a", .uint8(1))
        writer.set("b", .uint8(2))
        writer.set("a", .string("again"))
        let file = try Scratch.parse(writer.bytes())
        #expect(file.metadataKeys == ["a", "b"])
        #expect(file.metadata["a"] == .string("again"))
    }

    @Test("tensors come back with their dims, type, offsets and bytes",
          arguments: [(UInt32(2), 32), (3, 32), (3, 1), (3, 64), (2, 256)])
    func tensorRoundTrip(version: UInt32, alignment: Int) throws {
        let writer = sampleWriter(version: version, alignment: alignment)
        let bytes = writer.bytes()
        let file = try Scratch.parse(bytes, name: "tensors")

        #expect(file.version == version)
        #expect(file.alignment == alignment)
        #expect(file.dataOffset % alignment == 0)
        #expect(file.metadata["general.alignment"]?.int == (alignment == 32 ? nil : alignment))
        #expect(file.tensors.map(\.name) == ["norm", "emb", "proj", "kq"])
        #expect(file.tensors.map(\.dims) == [[8], [32, 3], [32, 2], [256, 1, 1, 1]])
        #expect(file.tensors.map(\.type) == [.f32, .f16, .q8_0, .q4_K])
        #expect(file.tensors.map(\.offset) == writer.tensorOffsets)
        for info in file.tensors {
            #expect(info.offset % alignment == 0)
            let start = file.dataOffset + info.offset
            #expect(Array(file.bytes(of: info)) == Array(bytes[start..<(start + info.byteCount)]))
        }
        #expect(bytes.count % alignment == 0, "the last tensor is padded too")
    }

    @Test("float tensors read back exactly")
    func floatValues() throws {
        let file = try Scratch.parse(sampleWriter().bytes())
        let norm = try file.requireTensor("norm")
        let raw = file.bytes(of: norm)
        let values = (0..<8).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        #expect(values == (0..<8).map { Float($0) / 8 })
    }

    @Test("general.alignment set as metadata changes the layout")
    func alignmentFromMetadata() throws {
        var writer = GGUFWriter()
        writer.set("general.alignment", .uint32(128))
        writer.addTensor(name: "a", dims: [3], type: .f32, values: [1, 2, 3])
        writer.addTensor(name: "b", dims: [2], type: .f32, values: [4, 5])
        #expect(writer.alignment == 128)
        let file = try Scratch.parse(writer.bytes())
        #expect(file.alignment == 128)
        #expect(file.dataOffset % 128 == 0)
        #expect(try file.requireTensor("b").offset == 128)
    }

    @Test("write(to:) writes what bytes() returns")
    func writeToPath() throws {
        let writer = sampleWriter()
        let path = Scratch.path("write")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writer.write(to: path)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == writer.bytes())
        #expect(try GGUFFile(path: path).path == path)
    }
}
