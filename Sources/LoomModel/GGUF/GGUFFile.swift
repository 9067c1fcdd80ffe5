/// A parsed GGUF file (versions 2 and 3): metadata, tensor directory, and the
/// memory-mapped tensor data. Everything is validated up front, so a tensor
/// handed out later is known to lie inside the file.
public struct GGUFFile: Sendable {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF" read little-endian
    public static let defaultAlignment = 32

    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order, for printing and rewriting.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    public let mapping: MappedFile
    private let tensorIndex: [String: Int]

    public init(path: String) throws {
        try self.init(mapping: MappedFile(path: path))
    }

    public init(mapping: MappedFile) throws {
        let path = mapping.path
        var reader = GGUFReader(bytes: mapping.bytes, path: path)
        let magic = try reader.read(UInt32.self, "the magic number")
        guard magic == Self.magic else {
            throw GGUFError(.badMagic, "\(path): not a GGUF file (magic 0x\(String(magic, radix: 16)), expected 0x\(String(Self.magic, radix: 16)) \"GGUF\")")
        }
        let version = try reader.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw GGUFError(.unsupportedVersion, "\(path): GGUF version \(version) is not supported; expected 2 or 3")
        }
        let tensorCount = try reader.readCount("the tensor count", minBytesEach: 24)
        let metadataCount = try reader.readCount("the metadata count", minBytesEach: 13)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for index in 0..<metadataCount {
            let keyStart = reader.offset
            let key = try reader.readString("metadata key #\(index)")
            let type = try reader.read(UInt32.self, "the type of metadata '\(key)'")
            // A repeated key would make the file mean different things to
            // readers that keep the first or the last value.
            guard metadata.updateValue(try reader.readValue(type: type, "metadata '\(key)'"), forKey: key) == nil else {
                throw GGUFError(.invalidValue, "\(path): metadata '\(key)' at byte \(keyStart) appears twice")
            }
            keys.append(key)
        }

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            infos.append(try Self.readTensorInfo(&reader, index: index, path: path))
        }

        let alignment = try Self.alignment(metadata["general.alignment"], path: path)
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        let index = try Self.indexTensors(infos, dataOffset: dataOffset, alignment: alignment, fileSize: mapping.bytes.count, path: path)

        self.path = path
        self.version = version
        self.metadata = metadata
        self.metadataKeys = keys
        self.tensors = infos
        self.alignment = alignment
        self.dataOffset = dataOffset
        self.mapping = mapping
        self.tensorIndex = index
    }

    /// Checks every tensor lies aligned inside the file and names are unique,
    /// so later accesses need no checks; returns the name index.
    private static func indexTensors(
        _ infos: [GGUFTensorInfo], dataOffset: Int, alignment: Int, fileSize: Int, path: String
    ) throws -> [String: Int] {
        var index: [String: Int] = [:]
        for (position, info) in infos.enumerated() {
            guard info.offset % alignment == 0 else {
                throw GGUFError(.invalidValue, "\(path): tensor '\(info.name)' offset \(info.offset) is not aligned to \(alignment)")
            }
            // Offsets come from the file and may be near 2^63: bound them by
            // the file size before adding, so the sums cannot overflow.
            guard info.offset <= fileSize, dataOffset + info.offset + info.byteCount <= fileSize else {
                let start = info.offset <= fileSize ? "\(dataOffset + info.offset)" : "\(dataOffset) + \(info.offset)"
                throw GGUFError(
                    .tensorOutOfBounds,
                    "\(path): tensor '\(info.name)' needs \(info.byteCount) bytes from byte \(start) but the file has \(fileSize) (truncated?)")
            }
            guard index.updateValue(position, forKey: info.name) == nil else {
                throw GGUFError(.invalidValue, "\(path): tensor '\(info.name)' appears twice")
            }
        }
        return index
    }

    /// general.alignment, if present, must be an integer power of two: any
    /// other value would silently misplace every tensor.
    private static func alignment(_ value: GGUFValue?, path: String) throws -> Int {
        guard let value else { return defaultAlignment }
        switch value {
        case .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64:
            if let alignment = value.int, alignment > 0, alignment.nonzeroBitCount == 1 {
                return alignment
            }
        default: break
        }
        throw GGUFError(.invalidValue, "\(path): general.alignment is \(value); expected an integer power of two")
    }

    private static func readTensorInfo(_ reader: inout GGUFReader, index: Int, path: String) throws -> GGUFTensorInfo {
        let name = try reader.readString("the name of tensor #\(index)")
        let rank = try reader.read(UInt32.self, "the rank of tensor '\(name)'")
        guard (1...4).contains(rank) else {
            throw GGUFError(.invalidValue, "\(path): tensor '\(name)' has rank \(rank); expected 1 to 4")
        }
        var dims: [Int] = []
        var elements = 1
        for axis in 0..<Int(rank) {
            let dim = try reader.read(UInt64.self, "dimension \(axis) of tensor '\(name)'")
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(clamping: dim))
            guard dim > 0, !overflow, product < 1 << 40 else {
                throw GGUFError(.invalidValue, "\(path): tensor '\(name)' dimension \(axis) is \(dim); expected a positive size")
            }
            elements = product
            dims.append(Int(dim))
        }
        let typeStart = reader.offset
        let rawType = try reader.read(UInt32.self, "the type of tensor '\(name)'")
        guard let type = GGMLType(rawValue: rawType) else {
            throw GGUFError(.unknownTensorType, "\(path): tensor '\(name)' has unknown type \(rawType) at byte \(typeStart)")
        }
        guard dims[0] % type.blockSize == 0 else {
            throw GGUFError(.shapeMismatch, "\(path): tensor '\(name)' row length \(dims[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        let offset = try reader.read(UInt64.self, "the data offset of tensor '\(name)'")
        return GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(clamping: offset))
    }

    public func info(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor, in place in the mapping.
    public func bytes(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + info.offset
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + info.byteCount)])
    }

    public func requireTensor(_ name: String) throws -> GGUFTensorInfo {
        guard let info = info(name) else {
            throw GGUFError(.missingTensor, "\(path): tensor '\(name)' is missing; the model's architecture needs it")
        }
        return info
    }

    public func require(_ key: String) throws -> GGUFValue {
        guard let value = metadata[key] else {
            throw GGUFError(.missingMetadata, "\(path): metadata '\(key)' is missing")
        }
        return value
    }
}
