import Foundation
import LoomModel

/// Builds GGUF files in memory, so tests can make tiny models and malformed
/// files without shipping binaries.
///
/// The writer checks only what it needs to lay the file out. Anything the
/// reader must reject (a version other than 2 or 3, duplicate tensor names,
/// tensor bytes that do not match the declared shape, a bad
/// `general.alignment`) is written as given, so tests can build those files.
public struct GGUFWriter: Sendable {
    /// The version number written in the header. The layout is the same for
    /// 2 and 3 (64-bit counts), so other numbers only change that field.
    public var version: UInt32
    /// The alignment tensor data is laid out with.
    public private(set) var alignment: Int
    private var entries: [Entry] = []
    private var tensors: [Tensor] = []

    private struct Entry: Sendable {
        var key: String
        var value: GGUFValue
    }

    private struct Tensor: Sendable {
        var name: String
        var dims: [Int]
        var type: GGMLType
        var bytes: [UInt8]
    }

    /// A non-default `alignment` is also recorded as `general.alignment`
    /// (uint32), since a reader has no other way to learn it.
    public init(version: UInt32 = 3, alignment: Int = GGUFFile.defaultAlignment) {
        precondition(alignment > 0 && alignment.nonzeroBitCount == 1, "alignment must be a power of two")
        self.version = version
        self.alignment = alignment
        if alignment != GGUFFile.defaultAlignment {
            set("general.alignment", .uint32(UInt32(alignment)))
        }
    }

    /// Sets a metadata value. A new key goes after the existing ones; setting
    /// an existing key replaces its value in place. Setting `general.alignment`
    /// to a positive power of two changes the layout alignment; any other value
    /// is written as given but the layout keeps its alignment, so a test can
    /// check that readers refuse it.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        precondition(Self.isEncodable(value), "metadata '\(key)': array elements must all have one type")
        if key == "general.alignment", let newAlignment = value.int, newAlignment > 0,
            newAlignment.nonzeroBitCount == 1
        {
            alignment = newAlignment
        }
        if let index = entries.firstIndex(where: { $0.key == key }) {
            entries[index].value = value
        } else {
            entries.append(Entry(key: key, value: value))
        }
    }

    /// Adds a tensor from raw, already-encoded bytes. Nothing is checked, so a
    /// test can declare more data than it supplies or a row length that is not
    /// a multiple of the block size.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, bytes: [UInt8]) {
        tensors.append(Tensor(name: name, dims: dims, type: type, bytes: bytes))
    }

    /// Adds a tensor from float values, encoded with `Quantizer`. `values` are
    /// in row-major order: `dims[0]` elements of row 0 first.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, values: [Float]) {
        precondition(dims.reduce(1, *) == values.count, "tensor '\(name)': \(values.count) values for dims \(dims)")
        precondition(dims.first.map { $0 % type.blockSize == 0 } ?? false,
                     "tensor '\(name)': row length must be a multiple of the \(type.name) block size")
        addTensor(name: name, dims: dims, type: type, bytes: Quantizer.quantize(values, as: type))
    }

    /// Drops a tensor, so a test can build a model that lacks one.
    public mutating func removeTensor(_ name: String) {
        tensors.removeAll { $0.name == name }
    }

    /// Offsets of each tensor's data from the start of the data section, in
    /// the order tensors were added.
    public var tensorOffsets: [Int] {
        var offsets: [Int] = []
        var next = 0
        for tensor in tensors {
            offsets.append(next)
            next = Self.aligned(next + tensor.bytes.count, to: alignment)
        }
        return offsets
    }

    /// The whole file. Every tensor, the last included, is padded to the
    /// alignment, as ggml's own writers do, so a reader that loads the data
    /// section as one padded block finds all of it.
    public func bytes() -> [UInt8] {
        var out = GGUFByteSink()
        out.append(GGUFFile.magic)
        out.append(version)
        out.append(UInt64(tensors.count))
        out.append(UInt64(entries.count))
        for entry in entries {
            out.append(string: entry.key)
            out.append(entry.value.typeTag)
            out.append(value: entry.value)
        }
        for (tensor, offset) in zip(tensors, tensorOffsets) {
            out.append(string: tensor.name)
            out.append(UInt32(tensor.dims.count))
            for dim in tensor.dims { out.append(UInt64(dim)) }
            out.append(tensor.type.rawValue)
            out.append(UInt64(offset))
        }
        out.pad(to: alignment)
        for tensor in tensors {
            out.bytes.append(contentsOf: tensor.bytes)
            out.pad(to: alignment)
        }
        return out.bytes
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }

    static func aligned(_ offset: Int, to alignment: Int) -> Int {
        (offset + alignment - 1) / alignment * alignment
    }

    /// GGUF arrays carry one element type, so mixed arrays cannot be written.
    /// Nested arrays may differ from each other: each names its own type.
    private static func isEncodable(_ value: GGUFValue) -> Bool {
        guard case .array(let elements) = value else { return true }
        guard let tag = elements.first?.typeTag else { return true }
        return elements.allSatisfy { $0.typeTag == tag && isEncodable($0) }
    }
}

/// Little-endian encoding of GGUF's primitive fields.
struct GGUFByteSink {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(string: String) {
        let utf8 = Array(string.utf8)
        append(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func pad(to alignment: Int) {
        let target = GGUFWriter.aligned(bytes.count, to: alignment)
        bytes.append(contentsOf: repeatElement(0, count: target - bytes.count))
    }

    mutating func append(value: GGUFValue) {
        switch value {
        case .uint8(let v): append(v)
        case .int8(let v): append(v)
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .bool(let v): append(UInt8(v ? 1 : 0))
        case .string(let v): append(string: v)
        case .array(let elements):
            // An empty array's element type is never read back; uint8 is as
            // good as any.
            append(elements.first?.typeTag ?? GGUFValue.uint8(0).typeTag)
            append(UInt64(elements.count))
            for element in elements { append(value: element) }
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float64(let v): append(v.bitPattern)
        }
    }
}
