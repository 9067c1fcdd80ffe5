/// A group that cannot start or cannot go on. The message names the rank
/// and what went wrong, and what to do about it.
public struct TensorParallelError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// A rank that does not fit the group (size, model, shard, rank).
        case mismatch
        /// A rank that never joined, or a leader that never answered.
        case joinTimeout
        /// A rank that died or stopped answering mid-step.
        case rankLost
        /// A step the group's regions cannot carry.
        case tooLarge
        case invalidMessage
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
