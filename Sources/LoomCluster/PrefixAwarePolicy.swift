/// Weighs the prompt blocks a worker would have to compute against the
/// requests it already owes work to:
///
///     cost = weight × (computed + fetchWeight × fetched) + loadWeight × (running + waiting)
///
/// where `computed` is what neither its cache nor a KV store node holds and
/// `fetched` what it would bring from the store (far cheaper than
/// computing, but not free).
///
/// The lowest cost wins; ties go to the less loaded worker, then the lowest
/// id. A cached prefix is worth only as much as the load it costs: a hot
/// worker with the whole prompt cached still loses to an idle cold one once
/// its queue outweighs the prefill it would save.
public struct PrefixAwarePolicy: RoutingPolicy {
    public let name = RoutingPolicyName.prefixAware.rawValue
    public var weight: Double
    public var loadWeight: Double
    /// A fetched block's cost against a computed one's (measured: a
    /// 16-token block is ~17 ms to compute here and well under 1 ms to fetch).
    public var fetchWeight = 0.05

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
        let work = request.work(cached: candidate.cachedBlocks)
        return weight * (Double(work.compute) + fetchWeight * Double(work.fetch)) + loadWeight * Double(candidate.load.queued)
    }

    /// Blocks the worker must find room for: all it does not hold yet.
    private func uncached(_ request: RoutingRequest, _ candidate: RoutingCandidate) -> Int {
        max(0, request.promptBlocks - candidate.cachedBlocks)
    }
}
