/// A bounds-checked little-endian cursor over the bytes of a GGUF file. Every
/// read that would pass the end throws `truncated` naming the offset and what
/// was being read, so a cut-off file is an error, never a crash.
struct GGUFReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset: Int = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    mutating func need(_ count: Int, _ what: @autoclosure () -> String) throws {
        guard count >= 0, offset <= bytes.count - count else {
            throw GGUFError(
                .truncated,
                "\(path): truncated at byte \(offset) reading \(what()) (needs \(count) bytes, file has \(bytes.count))")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// A count or length field, checked against what the rest of the file could hold.
    mutating func readCount(_ what: @autoclosure () -> String, minBytesEach: Int = 1) throws -> Int {
        let start = offset
        let raw = try read(UInt64.self, what())
        let remaining = bytes.count - offset
        guard raw <= UInt64(remaining / max(minBytesEach, 1)) else {
            throw GGUFError(
                .invalidValue,
                "\(path): \(what()) at byte \(start) is \(raw), more than the \(remaining) remaining bytes can hold")
        }
        return Int(raw)
    }

    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let length = try readCount("length of \(what())")
        try need(length, what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        offset += length
        // Invalid UTF-8 is repaired rather than refused: vocabularies of some
        // converted models carry lone bytes, and the token is still usable by id.
        return String(decoding: slice, as: UTF8.self)
    }

    mutating func readValue(type tag: UInt32, _ what: @autoclosure () -> String) throws -> GGUFValue {
        switch tag {
        case 0: return .uint8(try read(UInt8.self, what()))
        case 1: return .int8(try read(Int8.self, what()))
        case 2: return .uint16(try read(UInt16.self, what()))
        case 3: return .int16(try read(Int16.self, what()))
        case 4: return .uint32(try read(UInt32.self, what()))
        case 5: return .int32(try read(Int32.self, what()))
        case 6: return .float32(try readFloat(what()))
        case 7:
            let start = offset
            let raw = try read(UInt8.self, what())
            guard raw <= 1 else {
                throw GGUFError(.invalidValue, "\(path): \(what()) at byte \(start) is a bool stored as \(raw); expected 0 or 1")
            }
            return .bool(raw == 1)
        case 8: return .string(try readString(what()))
        case 9: return try readArray(what())
        case 10: return .uint64(try read(UInt64.self, what()))
        case 11: return .int64(try read(Int64.self, what()))
        case 12: return .float64(try readDouble(what()))
        default:
            throw GGUFError(
                .invalidValue,
                "\(path): \(what()) at byte \(offset - 4) has value type \(tag); expected 0...12")
        }
    }

    private mutating func readArray(_ what: @autoclosure () -> String) throws -> GGUFValue {
        let elementType = try read(UInt32.self, "element type of \(what())")
        let count = try readCount("element count of \(what())")
        var elements: [GGUFValue] = []
        elements.reserveCapacity(count)
        for index in 0..<count {
            elements.append(try readValue(type: elementType, "\(what())[\(index)]"))
        }
        return .array(elements)
    }
}
