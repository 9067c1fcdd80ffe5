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
        salts = nodes.map(StableHash.fnv1a)
    }

    /// The `replicas` nodes (at most all) that hold `hash`, best first.
    public func nodes(for hash: BlockHash, replicas: Int = 1) -> [Int] {
        let scored = salts.indices.map { (node: $0, score: StableHash.mix(hash.rawValue ^ salts[$0])) }
        return scored.sorted { $0.score > $1.score }.prefix(max(1, replicas)).map(\.node)
    }
}
