import Foundation

/// A chat message as the OpenAI API spells it.
public struct ChatMessage: Codable, Hashable, Sendable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The body of one streaming `POST /v1/chat/completions`.
struct ChatRequestBody: Encodable {
    struct StreamOptions: Encodable { var include_usage = true }

    var model: String
    var messages: [ChatMessage]
    var max_tokens: Int
    var stream = true
    var stream_options = StreamOptions()
    var temperature = 0.0
    // Without it a server stops at EOS and requests produce different token
    // counts; servers that do not know the field ignore it.
    var ignore_eos = true
}

/// The parts of one streamed chunk the benchmark reads. Every field is
/// optional because servers differ in which they send (and send `null`).
struct ChatChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable { var content: String? }
        var delta: Delta?
        var text: String?
    }
    struct Usage: Decodable {
        var prompt_tokens: Int?
        var completion_tokens: Int?
    }
    struct ErrorBody: Decodable { var message: String? }

    var choices: [Choice]?
    var usage: Usage?
    var error: ErrorBody?

    /// Text this chunk adds to the completion; `nil` when it adds none.
    var content: String? {
        let text = choices?.compactMap { $0.delta?.content ?? $0.text }.joined() ?? ""
        return text.isEmpty ? nil : text
    }
}

/// What the benchmark takes from one SSE event of a chat stream.
public enum StreamEvent: Equatable, Sendable {
    case content(String)
    /// The server's own token counts (the usage chunk).
    case usage(promptTokens: Int?, completionTokens: Int)
    case error(String)
    case done
    /// A chunk with neither content nor usage (role-only, finish_reason).
    case other

    /// Reads one event; a chunk may carry both content and usage, so this
    /// returns a list.
    public static func decode(_ event: SSEEvent) -> [StreamEvent] {
        if event.isDone { return [.done] }
        guard let chunk = try? JSONDecoder().decode(ChatChunk.self, from: Data(event.data.utf8)) else {
            return [.error("unreadable stream chunk: \(event.data.prefix(120))")]
        }
        if let error = chunk.error { return [.error(error.message ?? "server sent an error chunk")] }
        var out: [StreamEvent] = []
        if let text = chunk.content { out.append(.content(text)) }
        if let usage = chunk.usage, let tokens = usage.completion_tokens {
            out.append(.usage(promptTokens: usage.prompt_tokens, completionTokens: tokens))
        }
        return out.isEmpty ? [.other] : out
    }
}

/// `GET /v1/models`.
struct ModelListBody: Decodable {
    struct Model: Decodable { var id: String }
    var data: [Model]
}
