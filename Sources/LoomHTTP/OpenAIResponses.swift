import LoomEngine

/// Response bodies in OpenAI's shapes. Optional fields OpenAI sends as
/// explicit `null` (`finish_reason`, `logprobs`) are encoded by hand,
/// since synthesized `Encodable` would drop them and some clients index them.
struct Usage: Encodable, Sendable {
    struct PromptDetails: Encodable, Sendable {
        /// Prompt tokens whose KV was cached already (in the worker's pool
        /// or fetched from the store), as OpenAI reports prompt caching.
        var cached_tokens: Int
    }

    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
    var prompt_tokens_details: PromptDetails

    init(_ usages: [RequestUsage], promptTokens: Int) {
        prompt_tokens = promptTokens
        completion_tokens = usages.reduce(0) { $0 + $1.completionTokens }
        total_tokens = prompt_tokens + completion_tokens
        prompt_tokens_details = PromptDetails(cached_tokens: usages.map(\.cachedPromptTokens).max() ?? 0)
    }
}

struct ChatLogprobs: Encodable, Sendable {
    struct Alternative: Encodable, Sendable {
        var token: String
        var logprob: Float
        var bytes: [UInt8]
    }
    struct Entry: Encodable, Sendable {
        var token: String
        var logprob: Float
        var bytes: [UInt8]
        var top_logprobs: [Alternative]
    }
    var content: [Entry]

    init(_ tokens: [TokenLogprob]) {
        content = tokens.map { t in
            Entry(token: t.text, logprob: t.logprob, bytes: t.bytes,
                  top_logprobs: t.top.map { Alternative(token: $0.text, logprob: $0.logprob, bytes: $0.bytes) })
        }
    }
}

/// The legacy completions logprobs: parallel arrays, offsets into the choice's text.
struct CompletionLogprobs: Encodable, Sendable {
    var tokens: [String] = []
    var token_logprobs: [Float] = []
    var top_logprobs: [[String: Float]] = []
    var text_offset: [Int] = []

    mutating func append(_ logprobs: [TokenLogprob], offset: inout Int) {
        for t in logprobs {
            tokens.append(t.text)
            token_logprobs.append(t.logprob)
            top_logprobs.append(Dictionary(t.top.map { ($0.text, $0.logprob) }, uniquingKeysWith: max))
            text_offset.append(offset)
            offset += t.text.utf8.count
        }
    }
}

struct ChatMessageOut: Encodable, Sendable {
    var role: String?
    var content: String?
}

struct ChatChoice: Encodable, Sendable {
    var index: Int
    var message: ChatMessageOut?
    var delta: ChatMessageOut?
    var logprobs: ChatLogprobs?
    var finish_reason: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
    }
    enum CodingKeys: String, CodingKey { case index, message, delta, logprobs, finish_reason }
}

struct TextChoice: Encodable, Sendable {
    var text: String
    var index: Int
    var logprobs: CompletionLogprobs?
    var finish_reason: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(text, forKey: .text)
        try c.encode(index, forKey: .index)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
    }
    enum CodingKeys: String, CodingKey { case text, index, logprobs, finish_reason }
}

/// One body or SSE chunk of either endpoint; `object` tells which.
struct CompletionBody<Choice: Encodable & Sendable>: Encodable, Sendable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    /// Streams with `include_usage` carry `"usage": null` until the last chunk.
    var explicitNullUsage = false

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        if explicitNullUsage { try c.encode(usage, forKey: .usage) } else { try c.encodeIfPresent(usage, forKey: .usage) }
    }
    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
}

struct ModelList: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var owned_by = "loom"
    }
    var object = "list"
    var data: [Model]
}
