import LoomModel

/// Why generation ended.
public enum FinishReason: String, Sendable, Codable {
    /// The model produced an end-of-generation token (it is not returned).
    case stop
    /// `maxTokens` were generated.
    case length
    /// The caller asked to stop.
    case cancelled
}

public struct GenerationResult: Sendable {
    public var tokens: [TokenID]
    public var finishReason: FinishReason
    public var promptTokens: Int
}

/// Single-sequence generation on a `Transformer`: prefill the prompt in
/// chunks, then decode one token per step. The building block for
/// `loom generate` and the reference the batched engine is tested against.
public struct Generator {
    public let model: Transformer

    public init(model: Transformer) {
        self.model = model
    }

    /// Generates up to `maxTokens` tokens after `prompt`. `onToken` sees each
    /// token as it is sampled, with the logits it was sampled from, and
    /// returns false to stop. Tokens in `stopTokens` end generation and are
    /// not returned.
    /// Token slots one generation's KV cache holds (its blocks are 0..<n of
    /// that cache, which a tensor-parallel group's other ranks mirror).
    public static func kvTokens(prompt: Int, maxTokens: Int) -> Int { prompt + max(maxTokens, 1) }

    public func generate(
        prompt: [TokenID], maxTokens: Int, sampling: SamplingParameters = .init(),
        stopTokens: Set<TokenID> = [],
        onToken: (TokenID, UnsafeBufferPointer<Float>) -> Bool = { _, _ in true }
    ) throws -> GenerationResult {
        let context = model.config.contextLength
        guard !prompt.isEmpty else {
            throw ModelError(.invalidBatch, "the prompt is empty; give at least one token")
        }
        guard prompt.count + maxTokens <= context else {
            throw ModelError(
                .contextOverflow,
                "the prompt has \(prompt.count) tokens and \(maxTokens) more were asked for, but the model's context is \(context) tokens; shorten the prompt or ask for at most \(max(0, context - prompt.count)) tokens")
        }
        let cache = SequenceKVCache(layout: KVCacheLayout(config: model.config), capacity: Self.kvTokens(prompt: prompt.count, maxTokens: maxTokens))
        var sampler = Sampler(parameters: sampling, vocabularySize: model.config.vocabularySize)
        var history = prompt
        var generated: [TokenID] = []
        var logits = try prefill(prompt, cache: cache)
        while generated.count < maxTokens {
            let token = sampler.sample(logits, history: history)
            if stopTokens.contains(token) {
                return GenerationResult(tokens: generated, finishReason: .stop, promptTokens: prompt.count)
            }
            generated.append(token)
            history.append(token)
            guard onToken(token, logits) else {
                return GenerationResult(tokens: generated, finishReason: .cancelled, promptTokens: prompt.count)
            }
            guard generated.count < maxTokens else { break }
            var batch = ForwardBatch()
            batch.append(tokens: [token], startingAt: history.count - 1, blockTable: cache.blockTable)
            logits = try model.forward(batch, kv: cache.memory)
        }
        return GenerationResult(tokens: generated, finishReason: .length, promptTokens: prompt.count)
    }

    private func prefill(_ prompt: [TokenID], cache: SequenceKVCache) throws -> UnsafeBufferPointer<Float> {
        var batch = ForwardBatch()
        batch.append(tokens: prompt, startingAt: 0, blockTable: cache.blockTable)
        return try model.forward(batch, kv: cache.memory)
    }
}
