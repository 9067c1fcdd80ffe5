import NIOCore
import SwiftProtobuf

/// What we learnt about the other side from its HELLO.
public struct PeerInfo: Sendable {
    public var hello: Loom_Wire_Hello
    /// The highest protocol version both sides speak.
    public var version: UInt32
}

/// The HELLO exchange as a value type that returns actions, so it is tested
/// without a channel. The client speaks first (a REQUEST on method 0); the
/// server answers with a RESPONSE carrying its own HELLO. Nothing else may
/// cross the connection until both HELLOs have.
public struct HandshakeStateMachine {
    public enum Role: Sendable { case client, server }

    public enum Action {
        case none
        case write(Frame)
        case completed(PeerInfo, reply: Frame?)
        /// Close the connection; `reply` is a best-effort ERROR for the peer.
        case fail(WireError, reply: Frame?)
        /// Established: hand the frame to the business side.
        case forward(Frame)
    }

    enum State {
        case idle
        case awaitingPeerHello
        case established(PeerInfo)
        case failed
    }

    public static let helloMethod: UInt32 = 0

    public let role: Role
    public let local: Loom_Wire_Hello
    private(set) var state: State = .idle

    public init(role: Role, local: Loom_Wire_Hello) {
        self.role = role
        self.local = local
    }

    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    public mutating func channelActive() -> Action {
        guard case .idle = state else { return .none }
        state = .awaitingPeerHello
        guard role == .client else { return .none }
        return .write(helloFrame(kind: .request))
    }

    public mutating func frameReceived(_ frame: Frame) -> Action {
        switch state {
        case .established:
            return .forward(frame)
        case .failed:
            return .none
        case .idle, .awaitingPeerHello:
            return peerHelloReceived(frame)
        }
    }

    private mutating func peerHelloReceived(_ frame: Frame) -> Action {
        let expected: FrameKind = role == .server ? .request : .response
        if role == .client, frame.kind == .error {
            state = .failed
            let status = WireError(errorFrame: frame)
            return .fail(WireError(.handshakeFailed, "server refused our HELLO: \(status)"), reply: nil)
        }
        guard frame.kind == expected, frame.header.method == Self.helloMethod else {
            return fail(.protocolViolation, "expected a HELLO \(expected) first, got \(frame.kind) for method \(frame.header.method)", frame)
        }
        let hello: Loom_Wire_Hello
        do {
            hello = try Loom_Wire_Hello(serializedBytes: Array(frame.message.readableBytesView))
        } catch {
            return fail(.handshakeFailed, "peer HELLO is not a valid message: \(error)", frame)
        }
        guard let version = Set(hello.versions).intersection(local.versions).max() else {
            return fail(.handshakeFailed, "no common protocol version (peer speaks \(hello.versions), we speak \(local.versions)); upgrade one side", frame)
        }
        let peer = PeerInfo(hello: hello, version: version)
        state = .established(peer)
        return .completed(peer, reply: role == .server ? helloFrame(kind: .response) : nil)
    }

    private mutating func fail(_ code: WireError.Code, _ message: String, _ frame: Frame) -> Action {
        state = .failed
        let error = WireError(code, message)
        return .fail(error, reply: .error(error, replyingTo: frame.header))
    }

    private func helloFrame(kind: FrameKind) -> Frame {
        let bytes: [UInt8] = (try? local.serializedBytes()) ?? []
        return Frame(
            header: FrameHeader(kind: kind, correlationID: 0, method: Self.helloMethod),
            message: ByteBuffer(bytes: bytes)
        )
    }
}

extension Frame {
    /// An ERROR frame answering `header`'s call.
    public static func error(_ error: WireError, replyingTo header: FrameHeader) -> Frame {
        var status = Loom_Wire_ErrorStatus()
        status.code = error.code.rawValue
        status.message = error.message
        let bytes: [UInt8] = (try? status.serializedBytes()) ?? []
        return Frame(
            header: FrameHeader(kind: .error, correlationID: header.correlationID, method: header.method),
            message: ByteBuffer(bytes: bytes)
        )
    }
}

extension WireError {
    /// Reads the status out of an ERROR frame; a malformed one is itself an error.
    public init(errorFrame frame: Frame) {
        guard let status = try? Loom_Wire_ErrorStatus(serializedBytes: Array(frame.message.readableBytesView)) else {
            self.init(.badMessage, "peer sent an ERROR frame whose status does not parse")
            return
        }
        self.init(Code(rawValue: status.code), status.message)
    }
}
