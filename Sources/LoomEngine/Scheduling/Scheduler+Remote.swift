import LoomModel

/// The blocks a decode worker set aside for a prompt that another worker
/// prefills: the leading `cachedBlocks` already hold this worker's cached
/// prefix; the rest must be written by the prefill worker before
/// `admitReserved` lets the sequence decode.
public struct KVReservation: Sendable, Equatable {
    public var id: RequestID
    /// One block per `blockSize` prompt tokens, the last possibly partial.
    public var blockTable: [BlockID]
    public var cachedBlocks: Int

    /// The blocks the prefill worker must fill, in sequence order.
    public var blocksToFill: ArraySlice<BlockID> { blockTable[cachedBlocks...] }
}

extension Scheduler {
    /// Holds blocks for `request`'s prompt, reusing this worker's cached
    /// prefix, without scheduling any computation: a remote prefill worker
    /// writes the missing blocks, then `admitReserved` starts decoding.
    /// Refuses (`.overloaded`) when the blocks or a running slot are not free
    /// now; the router then prefills elsewhere rather than queueing here.
    public mutating func reserve(_ request: EngineRequest) throws(SchedulerError) -> KVReservation {
        try check(request)
        guard running.count + reserved.count < configuration.maxRunning else {
            throw SchedulerError(.overloaded, "all \(configuration.maxRunning) running slots are taken or reserved; retry after some finish")
        }
        let size = configuration.blockSize
        var sequence = SequenceState(request: request, arrival: takeArrival(), hasher: configuration.hasher)
        // As on local admission, the last prompt token is never a cache hit:
        // the prefill worker computes it to sample the first token, and the
        // block it lands in is written (so it must not be shared).
        let hits = pool.cachedPrefix(hashes: sequence.hashes, tokens: sequence.tokens, maxBlocks: (sequence.tokens.count - 1) / size,
                                    in: sequence.request.namespace)
        let needed = (sequence.tokens.count + size - 1) / size - hits.count
        guard pool.allocatableCount(reusing: hits) >= needed else {
            throw SchedulerError(.overloaded, "the prompt needs \(needed) free KV blocks but \(pool.allocatableCount(reusing: hits)) are free; retry after some requests finish")
        }
        pool.acquire(hits)
        sequence.blockTable = hits + (0..<needed).map { _ in pool.allocate()! }
        sequence.hashedBlocks = hits.count
        sequence.cachedPromptTokens = hits.count * size
        stats.prefixQueriedTokens += request.prompt.count
        stats.prefixHitTokens += hits.count * size
        reserved.append(sequence)
        return KVReservation(id: request.id, blockTable: sequence.blockTable, cachedBlocks: hits.count)
    }

    /// Starts decoding a reserved sequence whose blocks now hold the whole
    /// prompt's KV, with the first token the prefill worker sampled. Full
    /// prompt blocks join this worker's prefix cache at once. Returns the
    /// first token's event, or its finish if that token ends the request.
    public mutating func admitReserved(_ id: RequestID, firstToken: TokenID) throws(SchedulerError) -> [EngineEvent] {
        guard let r = reserved.firstIndex(where: { $0.id == id }) else {
            throw SchedulerError(.invalidRequest, "request \(id) holds no reservation here (expired or never made); prefill it again")
        }
        var sequence = reserved.remove(at: r)
        stats.remotePrefilledTokens += sequence.tokens.count - sequence.hashedBlocks * configuration.blockSize
        sequence.computed = sequence.tokens.count
        let at = running.firstIndex { $0.arrival > sequence.arrival } ?? running.count
        running.insert(sequence, at: at)
        commitFullBlocks(at)
        var events: [EngineEvent] = []
        if let reason = accept(firstToken, at: at, events: &events) {
            events += terminate(id, reason: reason)
        }
        return events + pool.drainEvents().map(EngineEvent.cache)
    }
}
