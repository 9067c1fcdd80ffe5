/// Why the router refused a heartbeat. Every case tells the worker the same
/// thing: register again (with a full cache snapshot) before sending more.
public struct MembershipError: Error, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// No worker registered under that id.
        case unknownWorker = "unknown_worker"
        /// The id now belongs to another incarnation.
        case staleEpoch = "stale_epoch"
        /// The worker was declared dead; its cache entries are gone.
        case expired
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
