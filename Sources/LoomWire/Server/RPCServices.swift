import NIOCore
import SwiftProtobuf

/// What a handler is given about the call it serves.
public struct RPCRequest: Sendable {
    public var method: UInt32
    public var correlationID: UInt64
    public var message: RPCMessage
    public var peer: PeerInfo
    /// This server's address the call arrived at: the interface a TCP
    /// client reached, whatever name or translated address it dialled.
    public var localAddress: SocketAddress?
    /// The caller's deadline as the server sees it; nil when none was given.
    public var timeout: Duration?
    /// What the method's `AttachmentSink` made of the attachment, when it
    /// took it (`message.attachment` is then empty).
    public var landed: (any Sendable)?
}

/// Sends the items of a server-streaming call. `send` returns once the item
/// is in the socket, so a slow client slows the handler.
public struct RPCStreamWriter: Sendable {
    let outbound: FrameWriter
    let header: FrameHeader

    public func send(_ item: RPCMessage) async throws {
        try Task.checkCancellation()
        try await outbound.write(Frame(
            header: FrameHeader(kind: .streamItem, correlationID: header.correlationID, method: header.method),
            message: item.message, attachment: item.attachment
        ))
    }

    public func send(_ item: some SwiftProtobuf.Message, attachment: ByteBuffer = ByteBuffer()) async throws {
        try await send(try RPCMessage(item, attachment: attachment))
    }
}

/// The methods a server answers. A mutable builder: register handlers, then
/// hand it to `RPCServer`, which keeps an immutable copy.
public struct RPCServices: Sendable {
    public typealias Unary = @Sendable (RPCRequest) async throws -> RPCMessage
    public typealias ServerStreaming = @Sendable (RPCRequest, RPCStreamWriter) async throws -> Void
    public typealias Immediate = @Sendable (RPCRequest) throws -> RPCMessage

    enum Handler: Sendable {
        case unary(Unary)
        case immediate(Immediate)
        case serverStreaming(ServerStreaming)
    }

    private(set) var handlers: [UInt32: Handler] = [:]
    private(set) var sinks: [UInt32: any AttachmentSink] = [:]

    public init() {}

    /// The methods registered so far.
    public var methods: Set<UInt32> { Set(handlers.keys) }

    public mutating func unary(_ method: UInt32, _ handler: @escaping Unary) {
        register(method, .unary(handler))
    }

    /// A unary method whose request attachments go to `sink` as they arrive;
    /// the handler finds the sink's result in `RPCRequest.landed`.
    public mutating func unary(_ method: UInt32, attachments sink: any AttachmentSink, _ handler: @escaping Unary) {
        register(method, .unary(handler))
        sinks[method] = sink
    }

    /// A unary method answered where its request is read: on the
    /// connection's event loop, with no task. It saves the task every other
    /// call starts, a few µs of a small call's round trip on these VMs, and
    /// suits handlers that neither wait nor take long (a lookup, a counter,
    /// an echo). Such a handler holds up every connection on its loop while
    /// it runs, and it is never cancelled or timed out: it is done before a
    /// CANCEL could be read.
    public mutating func immediate(_ method: UInt32, _ handler: @escaping Immediate) {
        register(method, .immediate(handler))
    }

    public mutating func serverStreaming(_ method: UInt32, _ handler: @escaping ServerStreaming) {
        register(method, .serverStreaming(handler))
    }

    public mutating func unary<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping @Sendable (Request, RPCRequest) async throws -> (Response, ByteBuffer)
    ) {
        unary(method.id) { request in
            let (response, attachment) = try await handler(try request.message.decode(Request.self), request)
            return try RPCMessage(response, attachment: attachment)
        }
    }

    public mutating func immediate<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping @Sendable (Request, RPCRequest) throws -> (Response, ByteBuffer)
    ) {
        immediate(method.id) { request in
            let (response, attachment) = try handler(try request.message.decode(Request.self), request)
            return try RPCMessage(response, attachment: attachment)
        }
    }

    public mutating func serverStreaming<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping @Sendable (Request, RPCRequest, RPCStreamWriter) async throws -> Void
    ) {
        serverStreaming(method.id) { request, writer in
            try await handler(try request.message.decode(Request.self), request, writer)
        }
    }

    private mutating func register(_ method: UInt32, _ handler: Handler) {
        precondition(method != HandshakeStateMachine.helloMethod, "method 0 is reserved for HELLO")
        precondition(handlers[method] == nil, "method \(method) registered twice")
        handlers[method] = handler
    }
}

/// Writes a frame and waits until the socket has taken it.
///
/// Server replies bypass NIOAsyncChannel's outbound writer on purpose: its
/// `write` returns without suspending while the channel is writable, and a
/// handler streaming into a fast reader then keeps the event loop so busy
/// with queued writes that the CANCEL for that very stream was never read
/// (seen in `streamEarlyExit`). Waiting for each write bounds a stream to one
/// frame in flight and is also what carries backpressure to the handler.
struct FrameWriter: Sendable {
    let channel: Channel

    func write(_ frame: Frame) async throws {
        try await channel.writeAndFlush(frame).get()
    }

    /// For a call's last frame: nothing follows it that needs to wait, and
    /// not waiting saves a thread hop on every unary call.
    func send(_ frame: Frame) {
        channel.writeAndFlush(frame, promise: nil)
    }
}
