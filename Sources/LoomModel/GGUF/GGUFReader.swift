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

    /// A count or length field, checked against what the rest of the file
    /// could hold before anything is allocated for it. A count that cannot
    /// fit is what a cut-off file looks like, so it is reported as truncation;
    /// the message gives the count, which shows when it is corruption instead.
    mutating func readCount(_ what: @autoclosure () -> String, minBytesEach: Int = 1) throws -> Int {
        let start = offset
        let raw = try read(UInt64.self, what())
        let remaining = bytes.count - offset
        guard raw <= UInt64(remaining / max(minBytesEach, 1)) else {
            throw GGUFError(
                .truncated,
                "\(path): truncated at byte \(start) reading \(what()): it is \(raw), but the \(remaining) bytes left hold at most \(remaining / max(minBytesEach, 1))")
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

    /// Arrays of arrays are legal, but no real file nests more than a level
    /// or two; the limit keeps a crafted file from exhausting the stack.
    static let maxArrayDepth = 64

    mutating func readValue(type tag: UInt32, _ what: @autoclosure () -> String, depth: Int = 0) throws -> GGUFValue {
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
        case 9: return try readArray(what(), depth: depth)
        case 10: return .uint64(try read(UInt64.self, what()))
        case 11: return .int64(try read(Int64.self, what()))
        case 12: return .float64(try readDouble(what()))
        default:
            throw GGUFError(
                .invalidValue,
                "\(path): \(what()) at byte \(offset - 4) has value type \(tag); expected 0...12")
        }
    }

    /// The fewest bytes a value of type `tag` takes, or nil for an unknown type.
    static func minimumSize(ofType tag: UInt32) -> Int? {
        switch tag {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 8, 10, 11, 12: 8
        case 9: 12
        default: nil
        }
    }

    private mutating func readArray(_ what: @autoclosure () -> String, depth: Int) throws -> GGUFValue {
        let typeStart = offset
        let elementType = try read(UInt32.self, "element type of \(what())")
        guard let elementSize = Self.minimumSize(ofType: elementType) else {
            throw GGUFError(
                .invalidValue,
                "\(path): \(what()) at byte \(typeStart) has element type \(elementType); expected 0...12")
        }
        guard elementType != 9 || depth < Self.maxArrayDepth else {
            throw GGUFError(
                .invalidValue,
                "\(path): \(what()) at byte \(typeStart) nests arrays more than \(Self.maxArrayDepth) deep")
        }
        let count = try readCount("element count of \(what())", minBytesEach: elementSize)
        var elements: [GGUFValue] = []
        elements.reserveCapacity(count)
        for index in 0..<count {
            elements.append(try readValue(type: elementType, "\(what())[\(index)]", depth: depth + 1))
        }
        return .array(elements)
    }
}
