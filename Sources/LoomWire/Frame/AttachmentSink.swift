import NIOCore

/// Decides where a request's attachment goes while its bytes are still
/// arriving, from the request's header and message.
///
/// Without a sink, a frame is gathered into one buffer before its handler
/// runs. For a 32 MiB KV write, that buffer grows copy by copy, and the
/// handler then copies it once more to where it belongs. With a sink, each
/// read from the socket is copied straight to its place.
///
/// A sink is asked only after the HELLO exchange and only for requests of the
/// methods it was registered for. It runs on the connection's event loop and
/// must not block.
public protocol AttachmentSink: Sendable {
    /// The receiver for this request's attachment. Throwing refuses the
    /// request: the attachment is read and dropped, and the caller gets the error.
    func receiver(for header: FrameHeader, message: ByteBuffer) throws(WireError) -> any AttachmentReceiver
}

/// Takes one attachment's bytes in order, on the event loop, then hands the
/// handler what it made of them.
public protocol AttachmentReceiver: AnyObject {
    func receive(_ bytes: UnsafeRawBufferPointer)
    /// Every byte arrived. The result reaches the handler as `RPCRequest.landed`.
    func finish() -> any Sendable
}

/// What became of a streamed attachment, carried with its frame to the
/// handler. Frames compare it by identity: there is only ever one per frame.
public final class AttachmentLanding: Sendable, Hashable {
    public let outcome: Result<any Sendable, WireError>

    init(_ outcome: Result<any Sendable, WireError>) {
        self.outcome = outcome
    }

    public static func == (lhs: AttachmentLanding, rhs: AttachmentLanding) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

/// Tells a connection's decoder that the HELLO exchange is done, so sinks may
/// take attachments. Before that, a peer could make a sink write into memory
/// without having said who it is.
///
/// Not `Sendable`: the decoder and the connection handler that opens it run
/// on the same event loop, one after the other.
final class HandshakeGate {
    var isOpen = false
}
