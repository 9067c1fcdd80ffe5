import LoomEngine
import LoomModel

// The wire forms of engine values: what the router and the roles exchange.

extension Loom_Cluster_GenerationSpec {
    public init(_ request: GenerationRequest, jsonMode: Bool) {
        self.init()
        prompt = request.prompt
        maxTokens = UInt32(request.maxTokens)
        stopTokens = request.stopTokens.sorted()
        topLogprobs = UInt32(request.topLogprobs)
        self.jsonMode = jsonMode
        resumedTokens = UInt32(request.resumedTokens)
        cacheNamespace = request.cacheNamespace?.root.rawValue ?? 0
        var s = Loom_Cluster_Sampling()
        s.temperature = request.sampling.temperature
        s.topK = Int32(request.sampling.topK)
        s.topP = request.sampling.topP
        s.minP = request.sampling.minP
        s.repetitionPenalty = request.sampling.repetitionPenalty
        s.frequencyPenalty = request.sampling.frequencyPenalty
        s.presencePenalty = request.sampling.presencePenalty
        s.hasSeed_p = request.sampling.seed != nil
        s.seed = request.sampling.seed ?? 0
        sampling = s
    }

    /// The engine request, without a constraint (the worker adds JSON mode's).
    public var request: GenerationRequest {
        let s = sampling
        var request = GenerationRequest(
            prompt: prompt, maxTokens: Int(maxTokens),
            sampling: SamplingParameters(
                temperature: s.temperature, topK: Int(s.topK), topP: s.topP, minP: s.minP,
                repetitionPenalty: s.repetitionPenalty, frequencyPenalty: s.frequencyPenalty,
                presencePenalty: s.presencePenalty, seed: s.hasSeed_p ? s.seed : nil),
            stopTokens: Set(stopTokens), topLogprobs: Int(topLogprobs))
        request.resumedTokens = min(Int(resumedTokens), prompt.count)
        request.cacheNamespace = CacheNamespace(wire: cacheNamespace)
        return request
    }
}

extension Loom_Cluster_Token {
    public init(_ token: TokenID, logprob: Float, top: [Logprobs.Entry]) {
        self.init()
        id = token
        self.logprob = logprob
        self.top = top.map { entry in
            var wire = Loom_Cluster_TopEntry()
            wire.token = entry.token
            wire.logprob = entry.logprob
            return wire
        }
    }

    public var output: GenerationOutput {
        .token(id, logprob: logprob, top: top.map { Logprobs.Entry(token: $0.token, logprob: $0.logprob) })
    }
}

extension Loom_Cluster_Finished {
    public init(_ reason: FinishReason, _ usage: RequestUsage) {
        self.init()
        self.reason = reason.rawValue
        promptTokens = UInt32(usage.promptTokens)
        completionTokens = UInt32(usage.completionTokens)
        cachedPromptTokens = UInt32(usage.cachedPromptTokens)
    }

    public var output: GenerationOutput {
        .finished(FinishReason(rawValue: reason) ?? .stop, RequestUsage(
            promptTokens: Int(promptTokens), completionTokens: Int(completionTokens), cachedPromptTokens: Int(cachedPromptTokens)))
    }
}

extension Loom_Cluster_TokenEvent {
    /// The wire item for an engine output.
    public init(_ output: GenerationOutput) {
        self.init()
        switch output {
        case .token(let token, let logprob, let top): event = .token(Loom_Cluster_Token(token, logprob: logprob, top: top))
        case .finished(let reason, let usage): event = .finished(Loom_Cluster_Finished(reason, usage))
        }
    }

    public var output: GenerationOutput? {
        switch event {
        case .token(let token): token.output
        case .finished(let finished): finished.output
        case nil: nil
        }
    }
}

extension Loom_Cluster_Load {
    public init(_ snapshot: EngineSnapshot, kvBlocksSent: UInt64, kvBlocksReceived: UInt64) {
        self.init()
        running = UInt32(snapshot.running)
        waiting = UInt32(snapshot.waiting)
        reserved = UInt32(snapshot.reserved)
        usedBlocks = UInt32(snapshot.usedBlocks)
        blockCount = UInt32(snapshot.blockCount)
        cachedBlocks = UInt32(snapshot.cachedBlocks)
        computedTokens = UInt64(snapshot.stats.computedTokens)
        remotePrefilledTokens = UInt64(snapshot.stats.remotePrefilledTokens)
        self.kvBlocksSent = kvBlocksSent
        self.kvBlocksReceived = kvBlocksReceived
    }
}

extension Loom_Cluster_CacheEvent {
    public init(_ event: KVCacheEvent) {
        self.init()
        switch event {
        case .stored(let hash, let parent):
            stored = true
            self.hash = hash.rawValue
            hasParent_p = parent != nil
            self.parent = parent?.rawValue ?? 0
        case .removed(let hash):
            stored = false
            self.hash = hash.rawValue
        }
    }

    public var event: KVCacheEvent {
        stored ? .stored(hash: BlockHash(rawValue: hash), parent: hasParent_p ? BlockHash(rawValue: parent) : nil)
            : .removed(hash: BlockHash(rawValue: hash))
    }
}
