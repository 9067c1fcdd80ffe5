/// Every failure the transfer engine reports: a stable code and a message a
/// person can act on.
public struct TransferError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: UInt32, Sendable {
        case outOfRegion = 1
        case staleDescriptor = 2
        case unknownRegion = 3
        case timedOut = 4
        /// The write may or may not have landed: its acknowledgement was lost.
        /// It is never replayed silently; the caller decides.
        case ackLost = 5
        case peerUnavailable = 6
        case invalidRequest = 7
        /// The target's owner refused the write (its lease on those bytes
        /// expired, say); nothing was written.
        case refused = 8
        /// This machine cannot run the backend asked for (no RDMA device,
        /// say); nothing was sent. Choose another backend.
        case backendUnavailable = 9
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
