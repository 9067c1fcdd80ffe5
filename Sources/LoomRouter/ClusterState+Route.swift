import LoomCluster
import LoomEngine
import LoomModel
import LoomWire

extension ClusterState {
    /// Picks the decode worker by the configured policy over the index and
    /// the router's own in-flight counts, then decides whether a prefill
    /// worker should compute the uncached part of the prompt. Workers in
    /// `excluding` (they failed this request) are passed over. Nil when no
    /// live decode-capable worker remains.
    public func route(_ prompt: [TokenID], excluding: Set<WorkerID> = []) -> Route? {
        let chain = settings.hasher.chain(prompt)
        let size = settings.hasher.blockSize
        let promptBlocks = (prompt.count + size - 1) / size
        // The last prompt token is always computed (its logits give the
        // first token), so a cached block holding it does not count.
        let usable = (prompt.count - 1) / size
        let route: Route? = state.withLock { state in
            let decoders = candidates(&state, roles: WorkerRole.decodeCapable, chain: chain, usable: usable, excluding: excluding)
            guard let decodeID = state.decodePolicy.choose(RoutingRequest(promptBlocks: promptBlocks), among: decoders),
                  let decode = target(state, decodeID)
            else { return nil }
            let cached = decoders.first { $0.id == decodeID }!.cachedBlocks
            state.index.recordLookup(promptBlocks: promptBlocks, hitBlocks: cached)
            let prefillers = candidates(&state, roles: [.prefill], chain: chain, usable: usable, excluding: excluding.union([decodeID]))
            let decision = DisaggregationDecision(
                uncachedPromptTokens: prompt.count - cached * size, threshold: settings.disaggregationThreshold,
                prefillWorkerAvailable: !prefillers.isEmpty)
            var route = Route(decode: decode, prefill: nil, cachedTokens: cached * size)
            if decision == .remote, let prefillID = state.prefillPolicy.choose(RoutingRequest(promptBlocks: promptBlocks), among: prefillers) {
                route.prefill = target(state, prefillID)
            }
            return route
        }
        if let route {
            countDecision(route.prefill == nil ? "local" : "remote")
            countDecision(route.cachedTokens > 0 ? "prefix_hit" : "prefix_miss")
        }
        return route
    }

    public func countDecision(_ outcome: String) {
        state.withLock { $0.decisions[outcome, default: 0] += 1 }
        metrics?.decided(outcome)
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

    private func target(_ state: State, _ id: WorkerID) -> Route.Target? {
        guard let worker = state.membership[id], let address = RPCAddress(hostPort: worker.rpcAddress) else { return nil }
        return Route.Target(id: id, address: address)
    }
}

extension RPCAddress {
    /// Parses `host:port` (the last colon splits, so IPv6 hosts in brackets work).
    public init?(hostPort: String) {
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) else { return nil }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self = .tcp(host: host, port: port)
    }
}
