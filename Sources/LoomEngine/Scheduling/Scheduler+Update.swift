import LoomModel

extension Scheduler {
    /// Applies the in-flight plan's outcome: the scheduled tokens now have
    /// KV, newly full blocks join the prefix cache, sampled tokens extend
    /// their sequences, and sequences that stop or reach their length finish
    /// and release their blocks. Returns token, finish and cache events in
    /// that order of occurrence.
    public mutating func update(_ result: StepResult) -> [EngineEvent] {
        guard let plan = inFlight else { preconditionFailure("update(_:) without a scheduled plan") }
        precondition(
            result.sampled.count == plan.logitRequests.count,
            "the plan asked for \(plan.logitRequests.count) sampled tokens; the result has \(result.sampled.count)")
        inFlight = nil
        // A request ended during the step gets no more tokens: its client
        // may be gone, or a stop string already ended its text.
        let ending = Set(deferredTerminations.map(\.0))
        var events: [EngineEvent] = []
        var sampled = result.sampled.makeIterator()
        var finished: [(RequestID, FinishReason)] = []
        for item in plan.items {
            let i = running.firstIndex { $0.id == item.id }!
            running[i].computed += item.tokens.count
            stats.computedTokens += item.tokens.count
            commitFullBlocks(i)
            guard item.needsLogits, let token = sampled.next(), !ending.contains(item.id) else { continue }
            if let reason = accept(token, at: i, events: &events) { finished.append((item.id, reason)) }
        }
        for (id, reason) in finished + deferredTerminations {
            events += terminate(id, reason: reason)
        }
        deferredTerminations.removeAll()
        events += pool.drainEvents().map(EngineEvent.cache)
        return events
    }

    /// Appends a sampled token unless it is a stop token; returns why the
    /// sequence ends, if it does.
    mutating func accept(_ token: TokenID, at i: Int, events: inout [EngineEvent]) -> FinishReason? {
        let request = running[i].request
        if request.stopTokens.contains(token) { return .stop }
        running[i].tokens.append(token)
        if running[i].tokens.count % configuration.blockSize == 0 {
            running[i].hashes = configuration.hasher.extend(running[i].hashes, tokens: running[i].tokens, in: request.namespace)
        }
        stats.generatedTokens += 1
        events.append(.token(request.id, token))
        return running[i].generated >= request.maxTokens ? .length : nil
    }

    /// Gives every block whose slots are now all written its hash, making it
    /// reusable. From here on the block is read-only.
    mutating func commitFullBlocks(_ i: Int) {
        let size = configuration.blockSize
        while running[i].hashedBlocks < running[i].computed / size {
            let n = running[i].hashedBlocks
            let block = running[i].blockTable[n]
            pool.commit(
                block, hash: running[i].hashes[n], parent: BlockHasher.parent(of: n, in: running[i].hashes, namespace: running[i].request.namespace),
                tokens: running[i].tokens[n * size..<(n + 1) * size])
            running[i].hashedBlocks += 1
        }
    }
}
