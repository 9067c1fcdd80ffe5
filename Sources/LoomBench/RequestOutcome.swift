/// Timings of one request that finished its stream, in seconds from the
/// moment it was sent.
public struct RequestMetrics: Equatable, Sendable {
    /// Send → first chunk with non-empty content.
    public var timeToFirstToken: Double
    /// Gaps between consecutive content chunks.
    public var interTokenLatencies: [Double]
    /// Send → end of the stream.
    public var endToEnd: Double
    /// The server's `usage.completion_tokens` when it sent one, else the
    /// number of content chunks.
    public var outputTokens: Int
    /// The server's `usage.prompt_tokens`, when it sent one: the only way
    /// to know what the chat template made of the prompt.
    public var promptTokens: Int?
    /// The answer's text, for a conversation's next round.
    public var text: String

    public init(
        timeToFirstToken: Double, interTokenLatencies: [Double], endToEnd: Double, outputTokens: Int,
        promptTokens: Int? = nil, text: String = ""
    ) {
        self.text = text
        self.timeToFirstToken = timeToFirstToken
        self.interTokenLatencies = interTokenLatencies
        self.endToEnd = endToEnd
        self.outputTokens = outputTokens
        self.promptTokens = promptTokens
    }
}

/// How one request ended. A failure carries a reason a person can act on;
/// it never stops the run.
public enum RequestOutcome: Equatable, Sendable {
    case ok(RequestMetrics)
    case failed(String)

    public var metrics: RequestMetrics? {
        if case .ok(let m) = self { return m }
        return nil
    }

    public var failureReason: String? {
        if case .failed(let reason) = self { return reason }
        return nil
    }
}

/// Folds the events of one stream into its metrics. A value type fed with
/// timestamps, so the timing rules are tested without a network.
public struct StreamRecorder: Sendable {
    private var firstContent: Double?
    private var lastContent: Double?
    private var gaps: [Double] = []
    private var chunks = 0
    private var usageTokens: Int?
    private var promptTokens: Int?
    private var error: String?
    private var sawDone = false
    private var text = ""

    public init() {}

    /// `time` is seconds since the request was sent.
    public mutating func record(_ event: StreamEvent, at time: Double) {
        switch event {
        case .content(let piece):
            text += piece
            if let last = lastContent { gaps.append(time - last) } else { firstContent = time }
            lastContent = time
            chunks += 1
        case .usage(let prompt, let completion):
            usageTokens = completion
            promptTokens = prompt
        case .error(let message):
            // The first error is the cause; later ones are usually fallout.
            if error == nil { error = message }
        case .done:
            sawDone = true
        case .other:
            break
        }
    }

    /// The outcome once the body has ended at `time`.
    public func finish(at time: Double) -> RequestOutcome {
        if let error { return .failed(error) }
        guard sawDone else { return .failed("stream ended without data: [DONE]") }
        guard let firstContent else { return .failed("stream carried no content") }
        return .ok(RequestMetrics(
            timeToFirstToken: firstContent, interTokenLatencies: gaps, endToEnd: time,
            outputTokens: usageTokens ?? chunks, promptTokens: promptTokens, text: text))
    }
}
