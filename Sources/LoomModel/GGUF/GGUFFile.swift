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
            let key = try reader.readString("metadata key #\(index)")
            let type = try reader.read(UInt32.self, "the type of metadata '\(key)'")
            metadata[key] = try reader.readValue(type: type, "metadata '\(key)'")
            keys.append(key)
        }

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            infos.append(try Self.readTensorInfo(&reader, index: index, path: path))
        }

        let alignment = metadata["general.alignment"]?.int ?? Self.defaultAlignment
        guard alignment > 0, alignment.nonzeroBitCount == 1 else {
            throw GGUFError(.invalidValue, "\(path): general.alignment is \(alignment); expected a power of two")
        }
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        var index: [String: Int] = [:]
        for (position, info) in infos.enumerated() {
            let end = dataOffset + info.offset + info.byteCount
            guard info.offset % alignment == 0 else {
                throw GGUFError(.invalidValue, "\(path): tensor '\(info.name)' offset \(info.offset) is not aligned to \(alignment)")
            }
            guard end <= mapping.bytes.count else {
                throw GGUFError(
                    .tensorOutOfBounds,
                    "\(path): tensor '\(info.name)' needs bytes \(dataOffset + info.offset)..<\(end) but the file has \(mapping.bytes.count) (truncated?)")
            }
            guard index.updateValue(position, forKey: info.name) == nil else {
                throw GGUFError(.invalidValue, "\(path): tensor '\(info.name)' appears twice")
            }
        }

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
