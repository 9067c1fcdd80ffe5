/// Takes candidates in turn, in id order, ignoring load and cache.
///
/// The cursor is the last chosen id rather than a position, so a worker
/// joining or leaving does not restart or skip the rotation: the next choice
/// is always the first id after the last one, wrapping around.
public struct RoundRobinPolicy: RoutingPolicy {
    public let name = RoutingPolicyName.roundRobin.rawValue
    private var last: WorkerID?

    public init() {}

    public mutating func choose(_ request: RoutingRequest, among candidates: [RoutingCandidate]) -> WorkerID? {
        let ids = candidates.map(\.id).sorted()
        guard let first = ids.first else { return nil }
        let next = last.flatMap { last in ids.first(where: { $0 > last }) } ?? first
        last = next
        return next
    }
}
