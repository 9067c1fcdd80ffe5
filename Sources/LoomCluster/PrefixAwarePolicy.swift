/// Weighs the prompt blocks a worker would have to compute against the
/// requests it already owes work to:
///
///     cost = weight × (promptBlocks − cachedBlocks) + loadWeight × (running + waiting)
///
/// The lowest cost wins; ties go to the less loaded worker, then the lowest
/// id. A cached prefix is worth only as much as the load it costs: a hot
/// worker with the whole prompt cached still loses to an idle cold one once
/// its queue outweighs the prefill it would save.
public struct PrefixAwarePolicy: RoutingPolicy {
    public let name = RoutingPolicyName.prefixAware.rawValue
    public var weight: Double
    public var loadWeight: Double

    public init(weight: Double = 1, loadWeight: Double = 1) {
        precondition(weight >= 0 && loadWeight >= 0, "routing weights are not negative")
        self.weight = weight
        self.loadWeight = loadWeight
    }

    public func choose(_ request: RoutingRequest, among candidates: [RoutingCandidate]) -> WorkerID? {
        // A worker whose free blocks cannot hold the uncached prompt would
        // queue or preempt it; only when every worker is that full is one of
        // them better than refusing.
        let roomy = candidates.filter { $0.load.freeBlocks >= uncached(request, $0) }
        let pool = roomy.isEmpty ? candidates : roomy
        return pool.min { a, b in
            let (ca, cb) = (cost(request, a), cost(request, b))
            return ca != cb ? ca < cb : RoutingCandidate.lessLoaded(a, b)
        }?.id
    }

    /// The policy's score for sending `request` to `candidate`; lower is
    /// better.
    public func cost(_ request: RoutingRequest, _ candidate: RoutingCandidate) -> Double {
        weight * Double(uncached(request, candidate)) + loadWeight * Double(candidate.load.queued)
    }

    private func uncached(_ request: RoutingRequest, _ candidate: RoutingCandidate) -> Int {
        max(0, request.promptBlocks - candidate.cachedBlocks)
    }
}
