import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One client's calls on the server. Each call runs in its own task so that
/// a CANCEL frame can reach it; the tasks are owned here: when the
/// connection ends they are cancelled and awaited. Unary calls prefer the
/// connection's event loop (see `EventLoopExecutor`).
struct ServerConnection: Sendable {
    let peer: PeerInfo
    let services: RPCServices
    let outbound: FrameWriter
    let executor: EventLoopExecutor
    let logger: Logger
    private let calls = NIOLockedValueBox([UInt64: Task<Void, Never>]())

    init(peer: PeerInfo, services: RPCServices, outbound: FrameWriter, executor: EventLoopExecutor, logger: Logger) {
        self.peer = peer
        self.services = services
        self.outbound = outbound
        self.executor = executor
        self.logger = logger
    }

    func run(_ inbound: NIOAsyncChannelInboundStream<Frame>) async {
        do {
            for try await frame in inbound {
                switch frame.kind {
                case .request:
                    start(frame)
                case .cancel:
                    calls.withLockedValue { $0[frame.correlationID] }?.cancel()
                case .response, .streamItem, .streamEnd, .error, .ping:
                    logger.debug("ignoring frame a client should not send", metadata: ["kind": "\(frame.kind)"])
                }
            }
        } catch {
            logger.debug("connection read failed", metadata: ["error": "\(error)"])
        }
        let running = calls.withLockedValue { Array($0.values) }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }

    private func start(_ frame: Frame) {
        let id = frame.correlationID
        let calls = self.calls
        let executor = executor(for: frame.header.method)
        calls.withLockedValue { running in
            guard running[id] == nil else {
                let error = WireError(.protocolViolation, "correlation id \(id) is already in use by a running call")
                outbound.send(.error(error, replyingTo: frame.header))
                return
            }
            // Inserted under the lock before the task can finish and remove itself.
            running[id] = Task(executorPreference: executor) {
                await respond(to: frame)
                calls.withLockedValue { _ = $0.removeValue(forKey: id) }
            }
        }
    }

    /// Unary calls run on the connection's event loop: one answer, then done.
    /// A stream does not: while the socket keeps taking its items, each
    /// write completes at once and its task is resumed in the same loop tick.
    /// NIO runs such tasks until none are left before it reads again, so a
    /// stream into a fast reader would keep the loop from reading anything,
    /// its own CANCEL and every other connection's pings included.
    private func executor(for method: UInt32) -> (any TaskExecutor)? {
        if case .unary = services.handlers[method] { return executor }
        return nil
    }

    private func respond(to frame: Frame) async {
        let header = frame.header
        let timeout: Duration? = header.timeoutMilliseconds == 0 ? nil : .milliseconds(header.timeoutMilliseconds)
        var request = RPCRequest(method: header.method, correlationID: header.correlationID,
                                 message: RPCMessage(frame), peer: peer, timeout: timeout)
        do {
            if let landing = frame.landing { request.landed = try landing.outcome.get() }
            let request = request
            let reply = try await withDeadline(timeout) { try await handle(request, header) }
            if let reply { outbound.send(reply) }
        } catch {
            let wire = Self.wireError(error, method: header.method)
            logger.debug("call failed", metadata: ["method": "\(header.method)", "error": "\(wire)"])
            outbound.send(.error(wire, replyingTo: header))
        }
    }

    private func handle(_ request: RPCRequest, _ header: FrameHeader) async throws -> Frame? {
        switch services.handlers[header.method] {
        case nil:
            throw WireError(.unknownMethod, "method \(header.method) is not served by this process")
        case .unary(let handler):
            let reply = try await handler(request)
            return Frame(header: FrameHeader(kind: .response, correlationID: header.correlationID, method: header.method),
                         message: reply.message, attachment: reply.attachment)
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
