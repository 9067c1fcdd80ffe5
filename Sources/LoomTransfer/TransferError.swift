import LoomWire

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

extension TransferError {
    /// What an RPC error on a backend's connection means to the writer:
    /// one mapping for every backend. A transfer failure the target sent
    /// comes back as itself; a peer that is gone or serves no such backend
    /// is `peerUnavailable`, with what to do about it.
    init(_ error: WireError, backend: String, peer: String, method: UInt32) {
        if let transfer = TransferError(wire: error) {
            self = transfer
            return
        }
        switch error.code {
        case .unavailable:
            self.init(.peerUnavailable, error.message)
        case .unknownMethod:
            self.init(.peerUnavailable, "\(peer) serves no \(backend) backend (method \(method)); it runs an older build, or was started without it")
        default:
            self.init(.peerUnavailable, "the \(backend) connection to \(peer) failed: \(error)")
        }
    }

    /// Runs `body`, a backend's connection to `peer`, with its RPC errors
    /// mapped as above.
    static func mapping<Result>(backend: String, peer: RPCAddress, method: UInt32, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as WireError where error.code != .cancelled {
            throw TransferError(error, backend: backend, peer: peer.hostPort, method: method)
        }
    }
}
