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

/// The sampling and stopping fields both endpoints share.
protocol SamplingFields {
    var model: String? { get }
    var n: Int? { get }
    var stream: Bool? { get }
    var stream_options: StreamOptions? { get }
    var stop: StopSequences? { get }
    var seed: Int? { get }
    var temperature: Double? { get }
    var top_p: Double? { get }
    var top_k: Int? { get }
    var min_p: Double? { get }
    var frequency_penalty: Double? { get }
    var presence_penalty: Double? { get }
    var repetition_penalty: Double? { get }
    var maxTokensAsked: Int? { get }
    var response_format: ResponseFormat? { get }
    /// Not OpenAI's: vLLM's and llama-server's extension that keeps
    /// generating past end-of-generation tokens (benchmarks use it to get
    /// exactly max_tokens from every server).
    var ignore_eos: Bool? { get }
}

struct ChatCompletionRequest: Decodable, SamplingFields {
    struct Message: Decodable {
        var role: String
        var content: MessageContent?
    }
    var model: String?
    var messages: [Message]
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
    var max_completion_tokens: Int?
    var logprobs: Bool?
    var top_logprobs: Int?
    var response_format: ResponseFormat?
    var ignore_eos: Bool?

    var maxTokensAsked: Int? { max_completion_tokens ?? max_tokens }
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

struct CompletionRequest: Decodable, SamplingFields {
    var model: String?
    var prompt: PromptInput
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
    var logprobs: Int?
    var response_format: ResponseFormat?
    var ignore_eos: Bool?

    var maxTokensAsked: Int? { max_tokens }
}
