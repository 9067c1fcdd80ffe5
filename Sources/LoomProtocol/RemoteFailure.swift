import LoomEngine
import LoomWire

/// What a worker's error means to the one who called it, decoded from the
/// wire code in this one place.
public enum RemoteFailure: Equatable, Sendable {
    /// The worker's scheduler refused the request; the code says why.
    case refused(SchedulerError)
    /// A one-sided KV write failed: the failure is the target's, not the
    /// writer's.
    case transfer(WireError)
    /// The connection to the worker broke, or never came up.
    case connection(WireError)
    /// Anything else the worker reported (a handler that failed, a
    /// deadline that passed).
    case failed(WireError)

    public init(_ error: WireError) {
        if let refusal = error.schedulerError {
            self = .refused(refusal)
        } else if WireError.Space.transfer.contains(error.code.rawValue) {
            self = .transfer(error)
        } else if Self.connectionCodes.contains(error.code) {
            self = .connection(error)
        } else {
            self = .failed(error)
        }
    }

    /// Codes after which the connection itself is of no further use.
    static let connectionCodes: Set<WireError.Code> = [.unavailable, .connectionClosed, .keepaliveTimeout, .protocolViolation, .handshakeFailed]

    /// Whether the connection that carried the call should be dropped.
    public var brokeTheConnection: Bool {
        if case .connection = self { return true }
        return false
    }
}
