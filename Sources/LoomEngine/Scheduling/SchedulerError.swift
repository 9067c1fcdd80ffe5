/// Why the scheduler would not accept a request or a configuration. The
/// message names the numbers involved and what would be accepted.
public struct SchedulerError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// The waiting queue is full; retry later (HTTP 429).
        case overloaded
        /// The prompt and the tokens asked for do not fit the context (HTTP 400).
        case contextOverflow
        /// The request could never fit in the KV pool, even alone (HTTP 400).
        case exceedsKVCapacity
        /// The request is malformed: empty prompt, no tokens asked for, duplicate id.
        case invalidRequest
        /// The scheduler configuration is inconsistent.
        case invalidConfiguration
        /// Nothing can serve the request now (a cluster with no live
        /// worker); retry later (HTTP 503).
        case unavailable
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
