import LoomModel

/// One accepted request as the scheduler tracks it, waiting or running.
struct SequenceState: Sendable {
    let request: EngineRequest
    /// Position in FCFS order; preempted sequences keep theirs.
    let arrival: UInt64
    /// Prompt then generated tokens. Only the last one may lack KV.
    var tokens: [TokenID]
    /// Hashes of every full block of `tokens`, extended as tokens arrive.
    var hashes: [BlockHash]
    /// Append-only while running; emptied at once on finish or preemption.
    var blockTable: [BlockID] = []
    /// Tokens whose KV is written (or shared from the cache).
    var computed = 0
    /// Leading blocks of `blockTable` that already have a hash: cached hits
    /// or blocks this sequence committed.
    var hashedBlocks = 0
    /// Prompt tokens the prefix cache served on first admission; nil until then.
    var cachedPromptTokens: Int?

    init(request: EngineRequest, arrival: UInt64, hasher: BlockHasher) {
        self.request = request
        self.arrival = arrival
        self.tokens = request.prompt
        self.hashes = hasher.chain(request.prompt, in: request.namespace)
    }

    var id: RequestID { request.id }
    var generated: Int { tokens.count - request.prompt.count }
    /// Tokens still to compute before the next token can be sampled.
    var remaining: Int { tokens.count - computed }

    var usage: RequestUsage {
        RequestUsage(
            promptTokens: request.prompt.count, completionTokens: generated,
            cachedPromptTokens: cachedPromptTokens ?? 0)
    }

    var candidate: PreemptionCandidate {
        PreemptionCandidate(id: id, arrival: arrival, computedTokens: computed, blockCount: blockTable.count)
    }
}
