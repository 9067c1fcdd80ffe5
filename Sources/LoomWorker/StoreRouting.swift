import LoomEngine
import LoomKVStore
import LoomWire
import Synchronization

/// A store node a worker publishes to: its stable id (its name) and address.
public struct StoreNodeAddress: Sendable, Equatable {
    public var name: String
    public var address: RPCAddress

    public init(name: String, address: RPCAddress) {
        self.name = name
        self.address = address
    }
}

/// Which store nodes hold each block for one worker: `replicas` distinct
/// nodes chosen by rendezvous hashing (so every worker agrees, and losing a
/// node moves only its blocks), with nodes that failed a call lately tried
/// last for a while, so a dead node costs one failed call, not one per
/// request.
public final class StoreRouting: Sendable {
    public let nodes: [StoreNodeAddress]
    public let replicas: Int
    let placement: StorePlacement
    let quarantine: Duration
    private let failedUntil: Mutex<[ContinuousClock.Instant?]>

    public init(nodes: [StoreNodeAddress], replicas: Int = 1, quarantine: Duration = .seconds(5)) {
        precondition(!nodes.isEmpty, "store routing needs a store node")
        self.nodes = nodes
        self.replicas = min(max(1, replicas), nodes.count)
        self.quarantine = quarantine
        placement = StorePlacement(nodes: nodes.map(\.name))
        failedUntil = Mutex(Array(repeating: nil, count: nodes.count))
    }

    /// The nodes that hold `hash`, best first.
    public func holders(of hash: BlockHash) -> [Int] {
        placement.nodes(for: hash, replicas: replicas)
    }

    /// `holders(of:)` with the nodes that failed lately moved to the end.
    public func readOrder(for hash: BlockHash) -> [Int] {
        let now = ContinuousClock.now
        let failing = failedUntil.withLock { until in Set(until.indices.filter { until[$0].map { $0 > now } ?? false }) }
        let holders = holders(of: hash)
        return holders.filter { !failing.contains($0) } + holders.filter { failing.contains($0) }
    }

    /// Whether `node` failed a call within its quarantine.
    public func isFailing(_ node: Int) -> Bool {
        failedUntil.withLock { $0[node].map { $0 > .now } ?? false }
    }

    public func failed(_ node: Int) {
        failedUntil.withLock { $0[node] = .now + quarantine }
    }

    public func answered(_ node: Int) {
        failedUntil.withLock { $0[node] = nil }
    }
}
