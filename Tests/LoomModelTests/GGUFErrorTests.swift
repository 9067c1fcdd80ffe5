import Foundation
import LoomModel
import LoomTesting
import Testing

/// A small valid file whose last tensor ends exactly on the alignment, so no
/// proper prefix of it is a complete file.
func truncationSample() -> GGUFWriter {
    var writer = GGUFWriter()
    writer.set("general.architecture", .string("llama"))
    writer.set("test.flag", .bool(true))
    writer.set("test.nested", .array([.array([.uint16(1)]), .array([.string("s")])]))
    writer.addTensor(name: "first", dims: [8], type: .f32, values: Array(repeating: 1, count: 8))
    writer.addTensor(name: "middle", dims: [32], type: .q8_0, values: Array(repeating: 2, count: 32))
    writer.addTensor(name: "last", dims: [4, 2], type: .f32, values: Array(repeating: 3, count: 8))
    return writer
}

/// The byte offset a "truncated at byte N" message names.
func namedOffset(in message: String) -> Int? {
    guard let range = message.range(of: "truncated at byte ") else { return nil }
    return Int(message[range.upperBound...].prefix { $0.isNumber })
}

@Suite("GGUF reader errors")
struct GGUFErrorTests {
    @Test("a file cut at every byte offset is an error naming the file and offset")
    func truncatedAtEveryOffset() throws {
        let full = truncationSample().bytes()
        let complete = try Scratch.parse(full)
        let layout = try #require(TensorEntryLayout(in: full, name: "last", rank: 2))
        let directoryEnd = layout.dataOffsetField + 8
        #expect(directoryEnd <= complete.dataOffset)

        for length in 0..<full.count {
            let path = Scratch.path("prefix-\(length)")
            try Data(full[..<length]).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            if length == 0 {
                let error = expectGGUFError(.truncated) { _ = try GGUFFile(path: path) }
                #expect(error?.message.contains("\(path): the file is empty") == true)
            } else if length < directoryEnd {
                let error = expectGGUFError(.truncated) { _ = try GGUFFile(path: path) }
                let message = error?.message ?? ""
                #expect(message.hasPrefix(path), "\(message)")
                let offset = try #require(namedOffset(in: message), "no offset in: \(message)")
                #expect(offset <= length, "\(message)")
            } else {
                let error = expectGGUFError(.tensorOutOfBounds) { _ = try GGUFFile(path: path) }
                let message = error?.message ?? ""
                #expect(message.hasPrefix(path) && message.contains("the file has \(length)"), "\(message)")
            }
        }
    }

    @Test("bad magic")
    func badMagic() throws {
        var bytes = truncationSample().bytes()
        bytes.replaceSubrange(0..<4, with: Array("GGML".utf8))
        let error = expectGGUFError(.badMagic) { _ = try Scratch.parse(bytes, name: "magic") }
        #expect(error?.message.contains("magic-") == true, "names the file")
    }

    @Test("versions other than 2 and 3 are refused", arguments: [UInt32(0), 1, 4, .max])
    func unsupportedVersion(version: UInt32) throws {
        var writer = truncationSample()
        writer.version = version
        let error = expectGGUFError(.unsupportedVersion) { _ = try Scratch.parse(writer.bytes()) }
        #expect(error?.message.contains("version \(version)") == true)
    }

    @Test("an unknown tensor type names the tensor")
    func unknownTensorType() throws {
        var bytes = truncationSample().bytes()
        let layout = try #require(TensorEntryLayout(in: bytes, name: "middle", rank: 1))
        bytes.patch(UInt32(99), at: layout.typeOffset)
        let error = expectGGUFError(.unknownTensorType) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("'middle'") == true)
        #expect(error?.message.contains("99") == true)
    }

    @Test("tensor data past the end of the file")
    func dataPastEnd() throws {
        var writer = GGUFWriter()
        writer.addTensor(name: "short", dims: [1024], type: .f32, bytes: [UInt8](repeating: 0, count: 16))
        let error = expectGGUFError(.tensorOutOfBounds) { _ = try Scratch.parse(writer.bytes()) }
        #expect(error?.message.contains("'short'") == true)
    }

    @Test("a tensor offset near 2^64 is out of bounds, not an overflow")
    func hugeTensorOffset() throws {
        for offset: UInt64 in [1 << 62, UInt64(Int.max), .max - 31, .max] {
            var bytes = truncationSample().bytes()
            let layout = try #require(TensorEntryLayout(in: bytes, name: "last", rank: 2))
            bytes.patch(offset, at: layout.dataOffsetField)
            // Unaligned offsets may be refused as such first; either way, no trap.
            do {
                _ = try Scratch.parse(bytes)
                Issue.record("offset \(offset) was accepted")
            } catch let error as GGUFError {
                #expect([.tensorOutOfBounds, .invalidValue].contains(error.code), "\(error)")
            }
        }
    }

    @Test("a misaligned tensor offset is refused")
    func misalignedOffset() throws {
        var bytes = truncationSample().bytes()
        let layout = try #require(TensorEntryLayout(in: bytes, name: "middle", rank: 1))
        bytes.patch(UInt64(33), at: layout.dataOffsetField)
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("'middle'") == true)
    }

    @Test("absurd counts and lengths are refused without allocating",
          arguments: [(8, UInt64(1) << 60), (16, 1 << 60), (24, 1 << 62), (8, .max), (16, .max), (24, .max)])
    func absurdHeaderCounts(offset: Int, value: UInt64) throws {
        // Offsets 8, 16 and 24: tensor count, metadata count, first key's length.
        var bytes = truncationSample().bytes()
        bytes.patch(value, at: offset)
        let error = expectGGUFError(.truncated) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("\(value)") == true, "names the count it refused")
    }

    @Test("an absurd array length is refused without allocating")
    func absurdArrayLength() throws {
        var writer = GGUFWriter()
        writer.set("arr", .array([.uint64(1), .uint64(2)]))
        var bytes = writer.bytes()
        // magic, version, counts (24), key length and "arr" (11), value type (4), element type (4)
        bytes.patch(UInt64(1) << 61, at: 24 + 11 + 4 + 4)
        let error = expectGGUFError(.truncated) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("'arr'") == true)
    }

    @Test("duplicate tensor names")
    func duplicateTensors() throws {
        var writer = GGUFWriter()
        writer.addTensor(name: "twin", dims: [8], type: .f32, values: Array(repeating: 0, count: 8))
        writer.addTensor(name: "twin", dims: [8], type: .f32, values: Array(repeating: 1, count: 8))
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(writer.bytes()) }
        #expect(error?.message.contains("'twin'") == true)
    }

    @Test("duplicate metadata keys")
    func duplicateKeys() throws {
        let bytes = metadataOnly(["general.a", "general.b", "general.a"])
        let error = expectGGUFError(.invalidValue) { _ = try Scratch.parse(bytes) }
        #expect(error?.message.contains("'general.a'") == true)
    }
}

/// A header with no tensors and a uint8 under each key, keys written
/// verbatim (the writer would merge repeated keys).
func metadataOnly(_ keys: [String]) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.appendLE(GGUFFile.magic)
    bytes.appendLE(UInt32(3))
    bytes.appendLE(UInt64(0))
    bytes.appendLE(UInt64(keys.count))
    for key in keys {
        bytes.appendLE(UInt64(key.utf8.count))
        bytes.append(contentsOf: key.utf8)
        bytes.appendLE(UInt32(0))
        bytes.append(1)
    }
    return bytes
}
