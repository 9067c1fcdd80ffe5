import NIOConcurrencyHelpers

/// The items of a server-streaming call. Throws the server's error, or
/// `deadlineExceeded` once the call's deadline (from its start) passes.
public struct RPCResponseStream: AsyncSequence, Sendable {
    public typealias Element = RPCMessage

    let connection: RPCConnection
    let id: UInt64
    let method: UInt32
    let inbox: CallInbox
    let deadline: ContinuousClock.Instant?
    let ended = NIOLockedValueBox(false)

    init(connection: RPCConnection, id: UInt64, method: UInt32, inbox: CallInbox, timeout: Duration?) {
        self.connection = connection
        self.id = id
        self.method = method
        self.inbox = inbox
        self.deadline = timeout.map { ContinuousClock.now + $0 }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: RPCResponseStream

        public mutating func next() async throws -> RPCMessage? {
            guard !stream.ended.withLockedValue({ $0 }) else { return nil }
            let remaining = stream.deadline.map { Swift.max($0 - ContinuousClock.now, .zero) }
            let frame = try await stream.connection.awaitReply(id: stream.id, method: stream.method, stream.inbox, timeout: remaining)
            switch frame?.kind {
            case .streamItem:
                return RPCMessage(frame!)
            case .streamEnd:
                stream.ended.withLockedValue { $0 = true }
                return nil
            case .error:
                stream.ended.withLockedValue { $0 = true }
                throw WireError(errorFrame: frame!)
            default:
                throw WireError(.protocolViolation, "stream \(stream.id) got \(frame.map { "\($0.kind)" } ?? "no") frame")
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}
