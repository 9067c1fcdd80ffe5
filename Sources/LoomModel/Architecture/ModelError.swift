/// A request the model cannot run as given. The message says what was wrong
/// and what would be accepted.
public struct ModelError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case invalidBatch
        case contextOverflow
        case invalidToken
        /// A tensor-parallel group the model cannot be split over.
        case invalidSplit
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
