import LoomEngine
import LoomModel

/// One sampled token as OpenAI's logprobs report it.
struct TokenLogprob: Sendable {
    struct Alternative: Sendable {
        var text: String
        var bytes: [UInt8]
        var logprob: Float
    }
    var text: String
    var bytes: [UInt8]
    var logprob: Float
    var top: [Alternative]
}

/// What one choice produces: text released since the last event, with the
/// logprobs of the tokens that released it; the last event carries why it ended.
enum ChoiceEvent: Sendable {
    case delta(String, [TokenLogprob])
    case finished(String, [TokenLogprob], FinishReason, RequestUsage)
}

/// Turns one engine stream into text events: detokenizes, holds back text
/// that may start a stop string, and stops reading on a match (dropping the
/// engine stream, which cancels the request in the engine).
///
/// `@unchecked Sendable`: a reader is used by one task at a time — the
/// request handler primes it, then hands it to exactly one consumer (the
/// response body writer or one child task of it), never sharing it.
final class ChoiceReader: @unchecked Sendable {
    let index: Int
    private var iterator: AsyncThrowingStream<GenerationOutput, Error>.AsyncIterator?
    private var primed: GenerationOutput?
    private var detokenizer: StreamingDetokenizer
    private var matcher: StopMatcher
    private var pendingLogprobs: [TokenLogprob] = []
    private let tokenizer: any Tokenizer
    private let wantsLogprobs: Bool
    private let promptTokens: Int
    private var completionTokens = 0
    private var finished = false
    private var timer: ChoiceTimer

    init(
        index: Int, stream: AsyncThrowingStream<GenerationOutput, Error>, tokenizer: any Tokenizer,
        stops: [String], wantsLogprobs: Bool, promptTokens: Int, timer: ChoiceTimer
    ) {
        self.index = index
        iterator = stream.makeAsyncIterator()
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        matcher = StopMatcher(stops)
        self.tokenizer = tokenizer
        self.wantsLogprobs = wantsLogprobs
        self.promptTokens = promptTokens
        self.timer = timer
    }

    /// Waits for the engine to accept the request, so a refusal (overload,
    /// context overflow) becomes an HTTP status before any byte is sent.
    func prime() async throws {
        primed = try await iterator?.next()
    }

    /// The next event, or nil after the finishing one.
    func next() async throws -> ChoiceEvent? {
        while true {
            let output: GenerationOutput?
            if let first = primed {
                output = first
                primed = nil
            } else {
                output = try await iterator?.next()
            }
            guard let output else {
                // The engine promises a `.finished` before the stream ends;
                // without this check a broken promise would hang the response.
                if finished { return nil }
                throw APIError(.internalServerError, type: "server_error", code: "stream_ended", "the engine ended choice \(index) without finishing it; retry the request")
            }
            if let event = consume(output) {
                if case .finished = event { finished = true }
                return event
            }
        }
    }

    private func consume(_ output: GenerationOutput) -> ChoiceEvent? {
        switch output {
        case .token(let token, let logprob, let top):
            completionTokens += 1
            timer.token()
            if wantsLogprobs { pendingLogprobs.append(describe(token, logprob, top)) }
            let (text, stopped) = matcher.push(detokenizer.append(token))
            if stopped {
                iterator = nil  // dropping the stream cancels the request
                timer.finished(completionTokens: completionTokens, cachedPromptTokens: 0, promptTokens: promptTokens)
                let usage = RequestUsage(promptTokens: promptTokens, completionTokens: completionTokens, cachedPromptTokens: 0)
                return .finished(text, takeLogprobs(), .stop, usage)
            }
            // Logprobs travel with the text they produced; while text is held
            // back they wait too, so a stop match never reports its tokens.
            if matcher.isHoldingText { return text.isEmpty ? nil : .delta(text, []) }
            let logprobs = takeLogprobs()
            return text.isEmpty && logprobs.isEmpty ? nil : .delta(text, logprobs)
        case .finished(let reason, let usage):
            iterator = nil
            timer.finished(completionTokens: usage.completionTokens, cachedPromptTokens: usage.cachedPromptTokens, promptTokens: usage.promptTokens)
            var (text, stopped) = matcher.push(detokenizer.finish())
            if !stopped { text += matcher.flush() }
            return .finished(text, takeLogprobs(), reason == .length ? .length : .stop, usage)
        }
    }

    private func takeLogprobs() -> [TokenLogprob] {
        defer { pendingLogprobs.removeAll() }
        return pendingLogprobs
    }

    private func describe(_ token: TokenID, _ logprob: Float, _ top: [Logprobs.Entry]) -> TokenLogprob {
        let bytes = tokenizer.piece(token)
        return TokenLogprob(
            text: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: logprob,
            top: top.map { entry in
                let bytes = tokenizer.piece(entry.token)
                return .init(text: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: entry.logprob)
            })
    }
}
