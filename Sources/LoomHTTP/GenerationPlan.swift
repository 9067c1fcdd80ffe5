import LoomEngine
import LoomModel

/// A validated request, endpoint-independent: what to run and how to report it.
struct GenerationPlan: Sendable {
    var prompt: [TokenID]
    /// Whose cached KV the request may use: from its API key, never its body.
    var cacheNamespace: CacheNamespace?
    var maxTokens: Int
    var sampling: SamplingParameters
    var n: Int
    var stops: [String]
    var logprobs: Bool
    var topLogprobs: Int
    var stream: Bool
    var includeUsage: Bool
    /// `response_format: json_object`: constrain decoding to a JSON object.
    var jsonMode: Bool
    var ignoreEOS: Bool

    /// Checks every field before anything reaches the engine, so a bad
    /// request costs the batch nothing.
    init(_ fields: SamplingFields, maxTokensAsked: Int?, prompt: [TokenID], contextLength: Int, logprobs: Bool, topLogprobs: Int) throws(APIError) {
        func require(_ ok: Bool, _ param: String, _ message: String) throws(APIError) {
            if !ok { throw APIError.invalid(param, message) }
        }
        guard !prompt.isEmpty else { throw APIError.invalid("prompt", "the prompt is empty; give at least one token") }
        let available = contextLength - prompt.count
        let maxTokens = maxTokensAsked ?? available
        try require(maxTokens >= 1, "max_tokens", "max_tokens is \(maxTokens); ask for at least 1")
        guard prompt.count + maxTokens <= contextLength else {
            throw APIError(
                .badRequest, code: "context_length_exceeded", param: "max_tokens",
                "the prompt has \(prompt.count) tokens and max_tokens is \(maxTokens), but the model's context is \(contextLength) tokens; ask for at most \(max(0, available)) tokens or shorten the prompt")
        }
        let n = fields.n ?? 1
        try require((1...16).contains(n), "n", "n is \(n); it must be between 1 and 16")
        let temperature = fields.temperature ?? 1
        try require((0...2).contains(temperature), "temperature", "temperature is \(temperature); it must be between 0 and 2")
        let topP = fields.top_p ?? 1
        try require(topP > 0 && topP <= 1, "top_p", "top_p is \(topP); it must be in (0, 1]")
        let minP = fields.min_p ?? 0
        try require((0...1).contains(minP), "min_p", "min_p is \(minP); it must be in [0, 1]")
        let topK = fields.top_k ?? 0
        try require(topK >= 0, "top_k", "top_k is \(topK); use 0 (off) or more")
        let repetition = fields.repetition_penalty ?? 1
        try require(repetition > 0, "repetition_penalty", "repetition_penalty is \(repetition); it must be positive")
        let frequency = fields.frequency_penalty ?? 0, presence = fields.presence_penalty ?? 0
        try require((-2...2).contains(frequency), "frequency_penalty", "frequency_penalty is \(frequency); it must be between -2 and 2")
        try require((-2...2).contains(presence), "presence_penalty", "presence_penalty is \(presence); it must be between -2 and 2")
        try require((0...20).contains(topLogprobs), "top_logprobs", "top_logprobs is \(topLogprobs); it must be between 0 and 20")
        let stops = fields.stop?.values ?? []
        try require(stops.count <= 4, "stop", "\(stops.count) stop strings were given; at most 4 are allowed")
        let format = fields.response_format?.type ?? "text"
        try require(["text", "json_object"].contains(format), "response_format", "response_format type '\(format)' is not supported; use 'text' or 'json_object'")
        jsonMode = format == "json_object"
        ignoreEOS = fields.ignore_eos ?? false
        try require(!(ignoreEOS && jsonMode), "ignore_eos", "ignore_eos cannot be combined with json_object: the JSON would never end")
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.n = n
        self.stops = stops
        self.logprobs = logprobs
        self.topLogprobs = topLogprobs
        stream = fields.stream ?? false
        includeUsage = fields.stream_options?.include_usage ?? false
        sampling = SamplingParameters(
            temperature: Float(temperature), topK: topK, topP: Float(topP), minP: Float(minP),
            repetitionPenalty: Float(repetition), frequencyPenalty: Float(frequency), presencePenalty: Float(presence),
            seed: fields.seed.map { UInt64(bitPattern: Int64($0)) })
    }

    /// Choice i of a seeded request uses seed + i, so choices differ from
    /// each other yet each is reproducible.
    func request(choice: Int, stopTokens: Set<TokenID>) -> GenerationRequest {
        var sampling = sampling
        sampling.seed = sampling.seed.map { $0 &+ UInt64(choice) }
        var request = GenerationRequest(prompt: prompt, maxTokens: maxTokens, sampling: sampling, stopTokens: ignoreEOS ? [] : stopTokens, topLogprobs: topLogprobs)
        request.cacheNamespace = cacheNamespace
        return request
    }
}
