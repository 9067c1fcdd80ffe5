import LoomEngine

/// Which store node holds a block: rendezvous (highest random weight)
/// hashing of (block hash, node id) over stable node ids. Every worker
/// computes the same answer with no coordination, and adding or losing a
/// node moves only the blocks whose highest-scoring node it is.
public struct StorePlacement: Sendable {
    public let nodes: [String]
    private let salts: [UInt64]

    public init(nodes: [String]) {
        precondition(!nodes.isEmpty, "a placement needs at least one store node")
        self.nodes = nodes
        salts = nodes.map(Self.fnv1a)
    }

    /// The `replicas` nodes (at most all) that hold `hash`, best first.
    public func nodes(for hash: BlockHash, replicas: Int = 1) -> [Int] {
        let scored = salts.indices.map { (node: $0, score: Self.mix(hash.rawValue ^ salts[$0])) }
        return scored.sorted { $0.score > $1.score }.prefix(max(1, replicas)).map(\.node)
    }

    private static func fnv1a(_ text: String) -> UInt64 {
        var value: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return value
    }

    /// SplitMix64's finalizer: every input bit moves every output bit.
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
