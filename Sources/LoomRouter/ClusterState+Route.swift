import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomWire

extension ClusterState {
    /// Picks the decode worker by the configured policy over the index and
    /// the router's own in-flight counts, then decides whether a prefill
    /// worker should compute the uncached part of the prompt. Workers in
    /// `excluding` (they failed this request) are passed over. Nil when no
    /// live decode-capable worker remains.
    public func route(_ prompt: [TokenID], in namespace: CacheNamespace? = nil, excluding: Set<WorkerID> = []) -> Route? {
        let chain = settings.hasher.chain(prompt, in: namespace)
        let size = settings.hasher.blockSize
        let promptBlocks = (prompt.count + size - 1) / size
        // The last prompt token is always computed (its logits give the
        // first token), so a cached block holding it does not count.
        let usable = (prompt.count - 1) / size
        let route: Route? = state.withLock { state in
            let request = RoutingRequest(promptBlocks: promptBlocks, storedBlocks: storedBlocks(state, chain: chain, usable: usable))
            let decoders = candidates(&state, roles: WorkerRole.decodeCapable, chain: chain, usable: usable, excluding: excluding)
            guard let decodeID = state.decodePolicy.choose(request, among: decoders),
                  let decode = target(state, decodeID)
            else { return nil }
            let cached = decoders.first { $0.id == decodeID }!.cachedBlocks
            state.index.recordLookup(promptBlocks: promptBlocks, hitBlocks: cached)
            let prefillers = candidates(&state, roles: [.prefill], chain: chain, usable: usable, excluding: excluding.union([decodeID]))
            // What the store holds the decode worker fetches rather than
            // computes: only the rest is worth a prefill worker.
            let computed = prompt.count - max(cached, request.storedBlocks) * size
            let decision = DisaggregationDecision(
                uncachedPromptTokens: computed, threshold: settings.disaggregationThreshold, prefillWorkerAvailable: !prefillers.isEmpty)
            var route = Route(decode: decode, prefill: nil, cachedTokens: cached * size, storedTokens: request.storedBlocks * size)
            if decision == .remote, let prefillID = state.prefillPolicy.choose(request, among: prefillers) {
                route.prefill = target(state, prefillID)
            }
            return route
        }
        if let route {
            countDecision(route.prefill == nil ? .local : .remote)
            countDecision(route.cachedTokens > 0 ? .prefixHit : .prefixMiss)
            if route.storedTokens > route.cachedTokens { countDecision(.storeHit) }
        }
        return route
    }

    public func countDecision(_ outcome: RoutingOutcome) {
        state.withLock { $0.decisions[outcome.rawValue, default: 0] += 1 }
        metrics?.decided(outcome.rawValue)
    }

    /// Counts a request as the worker's until `finished` says it is done.
    public func started(on id: WorkerID) {
        state.withLock { $0.inFlight[id, default: 0] += 1 }
    }

    public func finished(on id: WorkerID) {
        state.withLock { $0.inFlight[id, default: 1] -= 1 }
    }

    private func candidates(
        _ state: inout State, roles: Set<WorkerRole>, chain: [BlockHash], usable: Int, excluding: Set<WorkerID>
    ) -> [RoutingCandidate] {
        state.membership.alive(roles: roles).filter { !excluding.contains($0.id) }.map { worker in
            // Requests this router has in flight there stand for its load:
            // a heartbeat is up to an interval old, and a burst of arrivals
            // would all see the same idle worker.
            var load = worker.load
            load.running = max(load.running, state.inFlight[worker.id, default: 0])
            load.waiting = 0
            let cached = min(state.index.cachedBlocks(chain, on: worker.id), usable)
            return RoutingCandidate(id: worker.id, load: load, cachedBlocks: cached)
        }
    }

    /// The longest leading run of `chain` any live store node holds.
    private func storedBlocks(_ state: State, chain: [BlockHash], usable: Int) -> Int {
        let stores = state.membership.alive(roles: [.kvstore])
        return min(stores.map { state.index.cachedBlocks(chain, on: $0.id) }.max() ?? 0, usable)
    }

    private func target(_ state: State, _ id: WorkerID) -> Route.Target? {
        guard let worker = state.membership[id] else { return nil }
        return Route.Target(id: id, address: worker.rpcAddress)
    }
}

/// What the router decided for a request, as counted on the status page
/// and in `loom_routing_decisions_total`.
public enum RoutingOutcome: String, Sendable, CaseIterable {
    /// The decode worker prefills the prompt itself.
    case local
    /// A prefill worker computes the prompt into the decode worker's blocks.
    case remote
    case prefixHit = "prefix_hit"
    case prefixMiss = "prefix_miss"
    /// A KV store node held more of the prompt than the chosen worker.
    case storeHit = "store_hit"
    /// An attempt failed and the request moved to another worker.
    case retry
}
