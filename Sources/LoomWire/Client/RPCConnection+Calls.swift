import NIOCore
import SwiftProtobuf

extension RPCConnection {
    /// One request, one response. With a `timeout`, the server is told the
    /// deadline and the call fails with `deadlineExceeded` here even if the
    /// server never answers. Cancelling the calling task cancels the call on
    /// the server.
    public func unary(method: UInt32, _ request: RPCMessage, timeout: Duration? = nil) async throws -> RPCMessage {
        let (id, inbox) = try open(capacity: 2)
        defer { finish(id) }
        try await send(id: id, method: method, request, flags: [], timeout: timeout)
        let frame = try await awaitReply(id: id, method: method, inbox, timeout: timeout)
        guard let frame else { throw WireError(.protocolViolation, "call \(id) ended without a response") }
        switch frame.kind {
        case .response: return RPCMessage(frame)
        case .error: throw WireError(errorFrame: frame)
        default: throw WireError(.protocolViolation, "unary call \(id) got a \(frame.kind) frame")
        }
    }

    public func unary<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request,
        attachment: ByteBuffer = ByteBuffer(), timeout: Duration? = nil
    ) async throws -> (Response, ByteBuffer) {
        let reply = try await unary(method: method.id, try RPCMessage(request, attachment: attachment), timeout: timeout)
        return (try reply.decode(Response.self), reply.attachment)
    }

    /// A server-streaming call, consumed inside `body`. Leaving `body` early
    /// (or throwing) cancels the call on the server.
    public func serverStreaming<Result: Sendable>(
        method: UInt32, _ request: RPCMessage, timeout: Duration? = nil,
        _ body: (RPCResponseStream) async throws -> Result
    ) async throws -> Result {
        let (id, inbox) = try open(capacity: configuration.streamBufferCapacity)
        defer { finish(id) }
        try await send(id: id, method: method, request, flags: .serverStreaming, timeout: timeout)
        let stream = RPCResponseStream(connection: self, id: id, method: method, inbox: inbox, timeout: timeout)
        do {
            let result = try await body(stream)
            if !stream.ended.withLockedValue({ $0 }) { sendCancel(id: id, method: method) }
            return result
        } catch {
            sendCancel(id: id, method: method)
            throw error
        }
    }

    func send(id: UInt64, method: UInt32, _ request: RPCMessage, flags: FrameFlags, timeout: Duration?) async throws {
        let frame = Frame(
            header: FrameHeader(kind: .request, flags: flags, correlationID: id, method: method,
                                timeoutMilliseconds: timeout?.wireMilliseconds ?? 0),
            message: request.message, attachment: request.attachment
        )
        guard frame.header.frameLength <= min(configuration.maxFrameSize, Int(peer.hello.maxFrameSize)) else {
            throw WireError(.frameTooLarge, "request of \(frame.header.frameLength) bytes exceeds the max frame size (ours \(configuration.maxFrameSize), server's \(peer.hello.maxFrameSize)); send the data in parts")
        }
        // Small requests are not awaited (one thread hop less per call);
        // large ones wait until the socket took them, which is what pushes
        // back on a caller sending bulk attachments. Both go through the
        // channel in call order.
        if frame.header.frameLength < 64 << 10 {
            channel.writeAndFlush(frame, promise: nil)
        } else {
            try await channel.writeAndFlush(frame).get()
        }
    }

    /// Waits for the call's next frame, racing the deadline. On a local
    /// deadline or task cancellation the server is told to stop.
    func awaitReply(id: UInt64, method: UInt32, _ inbox: CallInbox, timeout: Duration?) async throws -> Frame? {
        do {
            guard let timeout else { return try await inbox.next() }
            return try await withThrowingTaskGroup(of: Frame?.self) { group in
                group.addTask { try await inbox.next() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw WireError(.deadlineExceeded, "no reply to call \(id) (method \(method)) within \(timeout)")
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch let error as WireError where error.code != .deadlineExceeded {
            throw error
        } catch {
            sendCancel(id: id, method: method)
            throw error is CancellationError ? WireError(.cancelled, "call \(id) was cancelled by the caller") : error
        }
    }

    /// Written straight to the channel because the calling task may already
    /// be cancelled; it follows the request, which was written earlier.
    func sendCancel(id: UInt64, method: UInt32) {
        let frame = Frame(header: FrameHeader(kind: .cancel, correlationID: id, method: method))
        channel.writeAndFlush(frame, promise: nil)
    }
}
