import LoomModel

/// `stop` may be one string or an array of them.
struct StopSequences: Decodable, Sendable {
    var values: [String]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) {
            values = [one]
        } else {
            values = try c.decode([String].self)
        }
    }
}

/// A chat message's `content`: a string, or an array of `{"type":"text"}` parts.
struct MessageContent: Decodable, Sendable {
    var text: String
    init(from decoder: any Decoder) throws {
        struct Part: Decodable {
            var type: String
            var text: String?
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            text = ""
        } else if let string = try? c.decode(String.self) {
            text = string
        } else {
            text = try c.decode([Part].self).compactMap(\.text).joined()
        }
    }
}

struct ResponseFormat: Decodable, Sendable {
    var type: String
}

struct StreamOptions: Decodable, Sendable {
    var include_usage: Bool?
}

/// The sampling and stopping fields both endpoints share. Each endpoint
/// decodes these from the same JSON object as its own fields.
struct SamplingFields: Decodable {
    var model: String?
    var n: Int?
    var stream: Bool?
    var stream_options: StreamOptions?
    var stop: StopSequences?
    var seed: Int?
    var temperature: Double?
    var top_p: Double?
    var top_k: Int?
    var min_p: Double?
    var frequency_penalty: Double?
    var presence_penalty: Double?
    var repetition_penalty: Double?
    var max_tokens: Int?
    var response_format: ResponseFormat?
    /// Not OpenAI's: vLLM's and llama-server's extension that keeps
    /// generating past end-of-generation tokens (benchmarks use it to get
    /// exactly max_tokens from every server).
    var ignore_eos: Bool?
}

struct ChatCompletionRequest: Decodable {
    struct Message: Decodable {
        var role: String
        var content: MessageContent?
    }
    var messages: [Message]
    var max_completion_tokens: Int?
    var logprobs: Bool?
    var top_logprobs: Int?
    /// Read only to refuse `false`, which a chat prompt cannot honour.
    var parse_special: Bool?
    var fields: SamplingFields

    private enum CodingKeys: String, CodingKey { case messages, max_completion_tokens, logprobs, top_logprobs, parse_special }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([Message].self, forKey: .messages)
        max_completion_tokens = try c.decodeIfPresent(Int.self, forKey: .max_completion_tokens)
        logprobs = try c.decodeIfPresent(Bool.self, forKey: .logprobs)
        top_logprobs = try c.decodeIfPresent(Int.self, forKey: .top_logprobs)
        parse_special = try c.decodeIfPresent(Bool.self, forKey: .parse_special)
        fields = try SamplingFields(from: decoder)
    }

    var maxTokensAsked: Int? { max_completion_tokens ?? fields.max_tokens }
}

/// The legacy `prompt` field: a string, one-string array, or token ids.
enum PromptInput: Decodable {
    case text(String)
    case tokens([TokenID])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let text = try? c.decode(String.self) {
            self = .text(text)
        } else if let texts = try? c.decode([String].self), texts.count == 1 {
            self = .text(texts[0])
        } else {
            self = .tokens(try c.decode([TokenID].self))
        }
    }
}

struct CompletionRequest: Decodable {
    var prompt: PromptInput
    var logprobs: Int?
    /// Not OpenAI's: `false` keeps control-token text in a string prompt as
    /// plain text, for prompts built from untrusted text. Named after
    /// llama-server's `/tokenize` field and llama.cpp's tokenizer flag.
    var parse_special: Bool?
    var fields: SamplingFields

    private enum CodingKeys: String, CodingKey { case prompt, logprobs, parse_special }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(PromptInput.self, forKey: .prompt)
        logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        parse_special = try c.decodeIfPresent(Bool.self, forKey: .parse_special)
        fields = try SamplingFields(from: decoder)
    }

    var maxTokensAsked: Int? { fields.max_tokens }
}
