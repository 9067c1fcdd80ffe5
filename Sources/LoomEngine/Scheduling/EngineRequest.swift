import LoomModel

/// A request's identity inside one engine, chosen by whoever submits it.
public struct RequestID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "r\(rawValue)" }
}

/// What the scheduler needs to know about a request: its tokens and when it
/// ends. Sampling parameters, stop strings and streams stay with the engine,
/// keyed by `id`; the scheduler decides only what runs when.
public struct EngineRequest: Sendable, Equatable {
    public var id: RequestID
    public var prompt: [TokenID]
    /// Generated tokens after which the request ends with `.length`.
    public var maxTokens: Int
    /// Tokens that end the request with `.stop`; they are not emitted.
    public var stopTokens: Set<TokenID>
    /// Whose cached blocks the request may use and adds to (nil: shared).
    public var namespace: CacheNamespace?

    public init(id: RequestID, prompt: [TokenID], maxTokens: Int, stopTokens: Set<TokenID> = [], namespace: CacheNamespace? = nil) {
        self.id = id
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.stopTokens = stopTokens
        self.namespace = namespace
    }
}

/// Token counts for a finished request, as OpenAI's `usage` reports them.
public struct RequestUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens served from the prefix cache on first admission.
    public var cachedPromptTokens: Int

    public init(promptTokens: Int, completionTokens: Int, cachedPromptTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedPromptTokens = cachedPromptTokens
    }
}

/// What the scheduler reports after a step or a cancellation.
public enum EngineEvent: Sendable, Equatable {
    /// A generated token for a request (never a stop token).
    case token(RequestID, TokenID)
    /// The request's terminal state; it is emitted exactly once per
    /// accepted request and nothing about the request follows it.
    case finished(RequestID, FinishReason, RequestUsage)
    /// A change to the prefix cache, for the router's index.
    case cache(KVCacheEvent)
}
