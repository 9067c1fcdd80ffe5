/// Sends each request to the worker with the fewest queued requests, then the
/// emptiest KV pool, then the lowest id. Ignores the prefix cache: the
/// baseline prefix-aware routing is measured against.
public struct LeastLoadedPolicy: RoutingPolicy {
    public let name = RoutingPolicyName.leastLoaded.rawValue

    public init() {}

    public func choose(_ request: RoutingRequest, among candidates: [RoutingCandidate]) -> WorkerID? {
        candidates.min(by: RoutingCandidate.lessLoaded)?.id
    }
}
