import LoomModel

/// The identity of a full KV block: a hash of its parent block's hash, the
/// model and its tokens. Equal hashes mean equal KV contents, so a block can
/// be reused by any request whose prompt starts with the same chain.
///
/// The value crosses processes (workers publish it, the router indexes it),
/// so it must not come from Swift's `Hasher`, which is seeded per process.
public struct BlockHash: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public var description: String {
        let hex = String(rawValue, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Computes block hash chains. The function is part of the wire contract
/// between workers and the router: changing it makes every published hash
/// stale, so it is written out here rather than borrowed from a library
/// whose output might change.
///
/// 64-bit FNV-1a over little-endian bytes (parent hash, model id, tokens),
/// finished with the SplitMix64 mixer because plain FNV-1a leaves the low
/// bits weak for short, similar inputs and the router shards on them.
public struct BlockHasher: Sendable, Equatable {
    public let modelID: UInt64
    public let blockSize: Int

    public init(modelID: UInt64, blockSize: Int = 16) {
        precondition(blockSize > 0, "a block holds at least one token")
        self.modelID = modelID
        self.blockSize = blockSize
    }

    /// A model id from a name everyone agrees on (the GGUF file's name and
    /// size, say), so two workers serving the same weights share hashes.
    public init(modelName: String, blockSize: Int = 16) {
        self.init(modelID: StableHash.fnv1a(modelName), blockSize: blockSize)
    }

    /// The hash of one full block whose predecessor hashed to `parent`
    /// (nil for the first block of a sequence).
    public func hash(parent: BlockHash?, tokens: some Collection<TokenID>) -> BlockHash {
        precondition(tokens.count == blockSize, "only full blocks are hashed; got \(tokens.count) of \(blockSize) tokens")
        var state = FNV1a()
        // A first block hashes a tag instead of a parent, so no real parent
        // hash can make a later block collide with a first one by accident.
        state.add(parent?.rawValue ?? 0x6C6F_6F6D_5F72_6F6F)
        state.add(modelID)
        for token in tokens { state.add(UInt32(bitPattern: token)) }
        return BlockHash(rawValue: StableHash.mix(state.value))
    }

    /// The hashes of every full block of `tokens`, in order, in
    /// `namespace` (nil: the shared one); a trailing partial block has none.
    public func chain(_ tokens: [TokenID], in namespace: CacheNamespace? = nil) -> [BlockHash] {
        extend([], tokens: tokens, in: namespace)
    }

    /// `hashes` (the chain of a prefix of `tokens`) extended over every full
    /// block of `tokens` that is not hashed yet.
    public func extend(_ hashes: [BlockHash], tokens: [TokenID], in namespace: CacheNamespace? = nil) -> [BlockHash] {
        var result = hashes
        let full = tokens.count / blockSize
        while result.count < full {
            let start = result.count * blockSize
            result.append(hash(parent: Self.parent(of: result.count, in: result, namespace: namespace), tokens: tokens[start..<start + blockSize]))
        }
        return result
    }

    /// The parent block `i` of `chain` was hashed after: the block before
    /// it, or for the first block its namespace's root (nil when shared).
    public static func parent(of i: Int, in chain: [BlockHash], namespace: CacheNamespace?) -> BlockHash? {
        i == 0 ? namespace?.root : chain[i - 1]
    }

}

/// A tenant's own block space: where the gateway has API keys, each key's
/// chains start from a root derived from the key, as if every first block
/// had a parent only that key's requests name. The same tokens under two
/// keys therefore hash to different blocks everywhere (worker pools, the
/// router's index, the store), and the store checks the root like any
/// parent. Made only from the authenticated key, never from a request's
/// fields; the key itself never leaves the gateway.
public struct CacheNamespace: Hashable, Sendable {
    public let root: BlockHash

    public init(apiKey: String) {
        // Odd, so never the zero that means "shared" on the wire.
        root = BlockHash(rawValue: StableHash.mix(StableHash.fnv1a("loom cache namespace\u{0}" + apiKey)) | 1)
    }

    /// The namespace a wire value names; nil for 0, the shared one.
    public init?(wire: UInt64) {
        guard wire != 0 else { return nil }
        root = BlockHash(rawValue: wire)
    }
}

/// Hashes whose values cross processes (block names, store placement), so
/// never Swift's `Hasher`, which is seeded per process. Written out here:
/// changing either changes every published value.
public enum StableHash {
    /// 64-bit FNV-1a of `text`'s UTF-8 bytes.
    public static func fnv1a(_ text: String) -> UInt64 {
        var state = FNV1a()
        for byte in text.utf8 { state.add(byte) }
        return state.value
    }

    /// SplitMix64's finalizer: every input bit moves every output bit.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func add(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }

    mutating func add(_ word: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { add(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
    }

    mutating func add(_ word: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { add(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
    }
}
