import LoomEngine
import LoomKernels
import LoomModel

/// What a stored block's bytes are: the paged-pool layout of one block
/// across all layers. Two workers can share a block only if this matches.
public struct StoredLayout: Hashable, Sendable, CustomStringConvertible {
    public enum Element: UInt8, Sendable {
        case f16 = 1
    }

    public var layers: Int
    public var kvHeads: Int
    public var headDim: Int
    public var blockSize: Int
    public var element: Element

    public init(layers: Int, kvHeads: Int, headDim: Int, blockSize: Int, element: Element = .f16) {
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.blockSize = blockSize
        self.element = element
    }

    public init(_ config: ModelConfig, blockSize: Int = KVCacheLayout.defaultBlockSize) {
        self.init(layers: config.layerCount, kvHeads: config.kvHeadCount, headDim: config.headDim, blockSize: blockSize)
    }

    /// Bytes of one block's keys and values, as a worker's pool holds them.
    public var payloadBytes: Int { layers * 2 * blockSize * kvHeads * headDim * 2 }

    public var description: String {
        "\(layers) layers × \(kvHeads) KV heads × \(headDim) dims × \(blockSize) tokens (\(element))"
    }
}

/// The self-describing header every stored block carries, in DRAM and on
/// disk: its name (the chain hash), its parent, the model and layout it
/// belongs to, the tokens it holds, and a checksum of its payload. A block
/// is only ever accepted or served after `verify`, so a block under the
/// wrong name, from another model or damaged on disk never reaches a worker.
public struct StoredBlockHeader: Hashable, Sendable {
    public static let magic: UInt32 = 0x4C4B_5642 // "LKVB"
    public static let version: UInt16 = 1
    static let fixedBytes = 56

    public var hash: BlockHash
    public var parent: BlockHash?
    public var modelID: UInt64
    public var layout: StoredLayout
    public var tokens: [TokenID]
    public var checksum: UInt32

    /// A header for `payload`, checksummed here.
    public init(hash: BlockHash, parent: BlockHash?, modelID: UInt64, layout: StoredLayout, tokens: [TokenID], payload: UnsafeRawBufferPointer) {
        self.init(hash: hash, parent: parent, modelID: modelID, layout: layout, tokens: tokens, checksum: Self.checksum(of: payload))
    }

    public init(hash: BlockHash, parent: BlockHash?, modelID: UInt64, layout: StoredLayout, tokens: [TokenID], checksum: UInt32) {
        self.hash = hash
        self.parent = parent
        self.modelID = modelID
        self.layout = layout
        self.tokens = tokens
        self.checksum = checksum
    }

    /// The checksum a header carries for `payload`.
    public static func checksum(of payload: UnsafeRawBufferPointer) -> UInt32 {
        Kernels.crc32c(payload)
    }

    public var encodedBytes: Int { Self.fixedBytes + 4 * tokens.count }

    /// Little-endian: magic, version, element, flags (bit 0: has a
    /// parent), hash, parent, model id, layers, KV heads, head dim, block
    /// size, token count (u32 each), checksum, then the tokens.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedBytes)
        out.append(Self.magic)
        out.append(Self.version)
        out.append(layout.element.rawValue)
        out.append(UInt8(parent == nil ? 0 : 1))
        out.append(hash.rawValue)
        out.append(parent?.rawValue ?? 0)
        out.append(modelID)
        for field in [layout.layers, layout.kvHeads, layout.headDim, layout.blockSize, tokens.count] {
            out.append(UInt32(field))
        }
        out.append(checksum)
        for token in tokens { out.append(UInt32(bitPattern: token)) }
        return out
    }

    /// Reads a header from the front of `bytes`; refuses anything that is
    /// not one, or is cut short.
    public init(decoding bytes: some Collection<UInt8>) throws(StoreError) {
        var reader = LittleEndianReader(Array(bytes))
        guard try reader.u32() == Self.magic else { throw StoreError(.malformed, "not a stored KV block (bad magic)") }
        let version = try reader.u16()
        guard version == Self.version else { throw StoreError(.malformed, "stored block format version \(version); this Loom reads \(Self.version)") }
        guard let element = StoredLayout.Element(rawValue: try reader.u8()) else { throw StoreError(.malformed, "unknown element type") }
        let hasParent = try reader.u8() & 1 == 1
        hash = BlockHash(rawValue: try reader.u64())
        let parent = try reader.u64()
        self.parent = hasParent ? BlockHash(rawValue: parent) : nil
        modelID = try reader.u64()
        let fields = try (0..<5).map { _ throws(StoreError) in Int(try reader.u32()) }
        layout = StoredLayout(layers: fields[0], kvHeads: fields[1], headDim: fields[2], blockSize: fields[3], element: element)
        guard fields[4] == fields[3] else {
            throw StoreError(.malformed, "a stored block holds \(fields[4]) tokens but its layout says blocks of \(fields[3])")
        }
        checksum = try reader.u32()
        tokens = try (0..<fields[4]).map { _ throws(StoreError) in TokenID(bitPattern: try reader.u32()) }
    }

    /// Checks that this header names what it claims for the store that
    /// expects `modelID` and `layout`: its hash follows from its parent and
    /// tokens, and (given `payload`) its checksum matches.
    public func verify(modelID: UInt64, layout: StoredLayout, payload: UnsafeRawBufferPointer?) throws(StoreError) {
        guard self.modelID == modelID else {
            throw StoreError(.wrongModel, "block \(hash) is for model \(String(self.modelID, radix: 16)); this store holds model \(String(modelID, radix: 16))")
        }
        guard self.layout == layout else {
            throw StoreError(.wrongLayout, "block \(hash) is laid out as \(self.layout); this store holds \(layout)")
        }
        let named = BlockHasher(modelID: modelID, blockSize: layout.blockSize).hash(parent: parent, tokens: tokens)
        guard named == hash else {
            throw StoreError(.wrongName, "block named \(hash) holds tokens whose chain hash is \(named)")
        }
        guard let payload else { return }
        guard payload.count == layout.payloadBytes else {
            throw StoreError(.malformed, "block \(hash) carries \(payload.count) bytes; its layout needs \(layout.payloadBytes)")
        }
        let sum = Kernels.crc32c(payload)
        guard sum == checksum else {
            throw StoreError(.corrupt, "block \(hash) fails its checksum (\(String(sum, radix: 16)) against \(String(checksum, radix: 16)))")
        }
    }
}

private extension Array where Element == UInt8 {
    mutating func append<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

struct LittleEndianReader {
    private let bytes: [UInt8]
    private var at = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func u8() throws(StoreError) -> UInt8 { try read(UInt8.self) }
    mutating func u16() throws(StoreError) -> UInt16 { try read(UInt16.self) }
    mutating func u32() throws(StoreError) -> UInt32 { try read(UInt32.self) }
    mutating func u64() throws(StoreError) -> UInt64 { try read(UInt64.self) }

    private mutating func read<T: FixedWidthInteger>(_: T.Type) throws(StoreError) -> T {
        let size = MemoryLayout<T>.size
        guard at + size <= bytes.count else {
            throw StoreError(.malformed, "stored block header cut short at byte \(bytes.count) (needed \(at + size))")
        }
        var value = T.zero
        for i in 0..<size { value |= T(bytes[at + i]) << (8 * i) }
        at += size
        return value
    }
}
