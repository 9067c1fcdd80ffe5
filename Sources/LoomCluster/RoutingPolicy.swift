/// One worker a request could go to, as the router sees it at decision time.
public struct RoutingCandidate: Sendable, Equatable {
    public var id: WorkerID
    public var load: WorkerLoad
    /// Leading blocks of the prompt the worker already caches
    /// (`PrefixIndex.cachedBlocks`).
    public var cachedBlocks: Int

    public init(id: WorkerID, load: WorkerLoad, cachedBlocks: Int = 0) {
        self.id = id
        self.load = load
        self.cachedBlocks = cachedBlocks
    }
}

/// What a policy needs to know about the request being placed.
public struct RoutingRequest: Sendable, Equatable {
    /// Blocks the prompt occupies: its full blocks plus a trailing partial one.
    public var promptBlocks: Int
    /// The prompt's leading blocks a KV store node holds: any worker can
    /// fetch them instead of computing them.
    public var storedBlocks: Int

    public init(promptBlocks: Int, storedBlocks: Int = 0) {
        precondition(promptBlocks >= 0 && storedBlocks >= 0, "a prompt has no negative size")
        self.promptBlocks = promptBlocks
        self.storedBlocks = storedBlocks
    }

    /// What a worker holding `cached` leading blocks would compute, and
    /// what it would fetch from the store first.
    public func work(cached: Int) -> (compute: Int, fetch: Int) {
        (max(0, promptBlocks - max(cached, storedBlocks)), max(0, storedBlocks - cached))
    }
}

/// Picks the worker for a request. A new way of choosing is a new type, not a
/// flag in an existing one. Policies are value types with whatever state they
/// keep (a rotation cursor) inside, so the router owns one per role and tests
/// replay decisions without a network.
public protocol RoutingPolicy: Sendable {
    var name: String { get }
    /// The chosen worker, or nil when `candidates` is empty.
    mutating func choose(_ request: RoutingRequest, among candidates: [RoutingCandidate]) -> WorkerID?
}

/// The policies a config or command line can name.
public enum RoutingPolicyName: String, Sendable, CaseIterable {
    case roundRobin = "round-robin"
    case leastLoaded = "least-loaded"
    case prefixAware = "prefix-aware"

    public func make(prefixWeight: Double = 1) -> any RoutingPolicy {
        switch self {
        case .roundRobin: RoundRobinPolicy()
        case .leastLoaded: LeastLoadedPolicy()
        case .prefixAware: PrefixAwarePolicy(weight: prefixWeight)
        }
    }
}

extension RoutingCandidate {
    /// Orders by queued requests, then KV use, then id: the shared tie-break,
    /// ending in the id so every decision is deterministic.
    static func lessLoaded(_ a: RoutingCandidate, _ b: RoutingCandidate) -> Bool {
        if a.load.queued != b.load.queued { return a.load.queued < b.load.queued }
        if a.load.kvUse != b.load.kvUse { return a.load.kvUse < b.load.kvUse }
        return a.id < b.id
    }
}
