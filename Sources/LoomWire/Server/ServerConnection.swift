import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One client's calls on the server. Each call runs in its own task so that
/// a CANCEL frame can reach it, except an `immediate` method's, which is
/// answered within the read; the tasks are owned here: when the
/// connection ends they are cancelled and awaited (`drain`). Frames come
/// from `RequestRouter` on the event loop, with no async sequence between
/// the socket and the call; unary calls start right there (see `start`).
final class ServerConnection: Sendable {
    let services: RPCServices
    let outbound: FrameWriter
    let executor: EventLoopExecutor
    let logger: Logger
    let localAddress: SocketAddress?
    private let state = NIOLockedValueBox(State())

    private struct State {
        var peer: PeerInfo?
        var calls: [UInt64: Task<Void, Never>] = [:]
        /// Calls that ended before `start` could record their task.
        var endedEarly: Set<UInt64> = []
    }

    init(services: RPCServices, outbound: FrameWriter, executor: EventLoopExecutor, logger: Logger, localAddress: SocketAddress?) {
        self.services = services
        self.outbound = outbound
        self.executor = executor
        self.logger = logger
        self.localAddress = localAddress
    }

    /// The HELLO exchange is done; calls may come from now on.
    func established(_ peer: PeerInfo) {
        state.withLockedValue { $0.peer = peer }
    }

    func cancel(_ id: UInt64) {
        state.withLockedValue { $0.calls[id] }?.cancel()
    }

    /// Cancels every call still running and waits for all of them.
    func drain() async {
        let running = state.withLockedValue { Array($0.calls.values) }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }

    /// Called on the event loop for each REQUEST. A unary call's task starts
    /// at once on this thread and runs until it first suspends, so a handler
    /// that answers without waiting replies within the read that brought
    /// its request, with no task queued behind the loop's I/O.
    func start(_ frame: Frame) {
        let id = frame.correlationID
        let (peer, inUse) = state.withLockedValue { ($0.peer, $0.calls[id] != nil) }
        // ConnectionHandler forwards no request before the HELLO exchange.
        guard let peer else { preconditionFailure("a request reached its call before the HELLO was done") }
        guard !inUse else {
            let error = WireError(.protocolViolation, "correlation id \(id) is already in use by a running call")
            outbound.send(.error(error, replyingTo: frame.header))
            return
        }
        if case .immediate(let handler) = services.handlers[frame.header.method] {
            answer(frame, from: peer, with: handler)
            return
        }
        let call: @Sendable () async -> Void = { [self] in
            await respond(to: frame, from: peer)
            ended(id)
        }
        let task = if let executor = executor(for: frame.header.method) {
            Task.immediate(executorPreference: executor, operation: call)
        } else {
            Task(operation: call)
        }
        state.withLockedValue { state in
            if state.endedEarly.remove(id) == nil { state.calls[id] = task }
        }
    }

    private func ended(_ id: UInt64) {
        state.withLockedValue { state in
            if state.calls.removeValue(forKey: id) == nil { state.endedEarly.insert(id) }
        }
    }

    /// Unary calls run on the connection's event loop: one answer, then done.
    /// A stream does not: while the socket keeps taking its items, each
    /// write completes at once and its task is resumed in the same loop tick.
    /// NIO runs such tasks until none are left before it reads again, so a
    /// stream into a fast reader would keep the loop from reading anything,
    /// its own CANCEL and every other connection's pings included.
    private func executor(for method: UInt32) -> EventLoopExecutor? {
        if case .unary = services.handlers[method] { return executor }
        return nil
    }

    private func respond(to frame: Frame, from peer: PeerInfo) async {
        let header = frame.header
        do {
            let request = try request(for: frame, from: peer)
            let reply = try await withDeadline(request.timeout) { [self] in try await handle(request, header) }
            if let reply { outbound.send(reply) }
        } catch {
            fail(header, error)
        }
    }

    /// An `immediate` method's call, answered on the event loop before the
    /// read that brought it returns.
    private func answer(_ frame: Frame, from peer: PeerInfo, with handler: RPCServices.Immediate) {
        do {
            outbound.send(Self.response(try handler(try request(for: frame, from: peer)), to: frame.header))
        } catch {
            fail(frame.header, error)
        }
    }

    private func request(for frame: Frame, from peer: PeerInfo) throws -> RPCRequest {
        let header = frame.header
        let timeout: Duration? = header.timeoutMilliseconds == 0 ? nil : .milliseconds(header.timeoutMilliseconds)
        var request = RPCRequest(method: header.method, correlationID: header.correlationID,
                                 message: RPCMessage(frame), peer: peer, localAddress: localAddress, timeout: timeout)
        if let landing = frame.landing { request.landed = try landing.outcome.get() }
        return request
    }

    private static func response(_ reply: RPCMessage, to header: FrameHeader) -> Frame {
        Frame(header: FrameHeader(kind: .response, correlationID: header.correlationID, method: header.method),
              message: reply.message, attachment: reply.attachment)
    }

    private func fail(_ header: FrameHeader, _ error: Error) {
        let wire = Self.wireError(error, method: header.method)
        logger.debug("call failed", metadata: ["method": "\(header.method)", "error": "\(wire)"])
        outbound.send(.error(wire, replyingTo: header))
    }

    private func handle(_ request: RPCRequest, _ header: FrameHeader) async throws -> Frame? {
        switch services.handlers[header.method] {
        case nil:
            throw WireError(.unknownMethod, "method \(header.method) is not served by this process")
        case .unary(let handler):
            return Self.response(try await handler(request), to: header)
        case .immediate(let handler):
            // `start` answers these itself; kept whole for exhaustiveness.
            return Self.response(try handler(request), to: header)
        case .serverStreaming(let handler):
            try await handler(request, RPCStreamWriter(outbound: outbound, header: header))
            return Frame(header: FrameHeader(kind: .streamEnd, correlationID: header.correlationID, method: header.method))
        }
    }

    private func withDeadline<T: Sendable>(_ timeout: Duration?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let timeout else { return try await body() }
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw WireError(.deadlineExceeded, "call ran past the caller's deadline of \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    static func wireError(_ error: Error, method: UInt32) -> WireError {
        switch error {
        case let wire as WireError: wire
        case is CancellationError: WireError(.cancelled, "call was cancelled")
        default: WireError(.handlerFailed, "method \(method) failed: \(error)")
        }
    }
}

/// The last handler of a server connection: hands each frame the HELLO let
/// through to its call, on the event loop.
final class RequestRouter: ChannelInboundHandler {
    typealias InboundIn = Frame

    let connection: ServerConnection

    init(_ connection: ServerConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .request:
            connection.start(frame)
        case .cancel:
            connection.cancel(frame.correlationID)
        case .response, .streamItem, .streamEnd, .error, .ping:
            connection.logger.debug("ignoring frame a client should not send", metadata: ["kind": "\(frame.kind)"])
        }
    }
}
