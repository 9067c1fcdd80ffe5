import LoomWire
import Synchronization

/// A writer's queue-pair pair towards one verbs target, replaced by a
/// fresh pair after a failure. A failed RC queue pair cannot be revived in
/// place (see `QueuePairStateMachine`), so each pair comes from a connect
/// call of its own: the call stays open while the writer uses the pair,
/// and ending it has the target destroy its half.
final class VerbsLink: Sendable {
    /// One queue-pair pair and the connect call that keeps the target's half.
    struct Session: Sendable {
        let qp: UInt32
        /// The target's owner and incarnation, from its answer.
        let owner: String
        let epoch: UInt64
        /// Holds the call open; cancelling it ends the call.
        let call: Task<Void, Never>
    }

    /// Fresh pairs that may fail with no successful write in between
    /// before the link gives up: past that the target is broken, not a pair.
    static let reopenLimit = 3

    private struct State {
        var current: Session?
        var opening: Task<Session, any Error>?
        var failuresInARow = 0
        var lastFailure: String?
        var closed = false
    }

    private let connection: RPCConnection
    private let endpoint: VerbsEndpoint
    /// The connect request, less the queue pair each call offers.
    private let request: Loom_Transfer_VerbsConnectRequest
    /// How long a target may take to answer a connect call. The call has
    /// no deadline of its own (it stays open while the pair is used), so
    /// without this a target that took the call and never answered would
    /// hold every writer waiting for the pair.
    private let setupTimeout: Duration
    private let state = Mutex(State())

    init(connection: RPCConnection, endpoint: VerbsEndpoint, request: Loom_Transfer_VerbsConnectRequest,
         setupTimeout: Duration = VerbsTransport.defaultSetupTimeout) {
        self.connection = connection
        self.endpoint = endpoint
        self.request = request
        self.setupTimeout = setupTimeout
    }

    /// The pair to write on: the current one while it is up, else a fresh one.
    func session() async throws -> Session {
        let current = state.withLock { $0.current }
        if let current, endpoint.isUp(current.qp) { return current }
        return try await replace(observed: current)
    }

    /// A write succeeded: the pair works, whatever failed before.
    func succeeded() {
        state.withLock { $0.failuresInARow = 0 }
    }

    /// Ends the current pair's call (the target destroys its half) and
    /// refuses new pairs.
    func close() async {
        let (current, opening) = state.withLock { state in
            state.closed = true
            defer { state.current = nil }
            return (state.current, state.opening)
        }
        opening?.cancel()
        _ = try? await opening?.value
        current?.call.cancel()
        await current?.call.value
    }

    /// Replaces `observed`, which went down; callers that find it down
    /// together wait for the same replacement, and one that finds it
    /// already replaced takes the new pair.
    private func replace(observed: Session?) async throws -> Session {
        enum Next {
            case ready(Session)
            case opening(Task<Session, any Error>)
        }
        let next = try state.withLock { state throws(TransferError) -> Next in
            if let opening = state.opening { return .opening(opening) }
            if let current = state.current, current.qp != observed?.qp { return .ready(current) }
            guard !state.closed else {
                throw TransferError(.peerUnavailable, "the verbs link to \(connection.peer.hello.nodeName) is closed")
            }
            let failed = state.current
            state.current = nil
            if let failed {
                let machine = endpoint.machine(of: failed.qp)
                state.lastFailure = machine?.failure ?? state.lastFailure
                // A key or range the target refused is the writer's stale
                // descriptor (a lease ran out), not a broken path.
                if machine?.refusedByPeer != true { state.failuresInARow += 1 }
            }
            guard state.failuresInARow <= Self.reopenLimit else {
                state.current = failed
                throw TransferError(.peerUnavailable, "gave up on RDMA writes to \(connection.peer.hello.nodeName): \(Self.reopenLimit) fresh queue pairs in a row broke before any write got through (last: \(state.lastFailure ?? "unknown")); the path to it is down; reconnect to try again")
            }
            let task = Task { try await self.open(after: failed) }
            state.opening = task
            return .opening(task)
        }
        switch next {
        case .ready(let session): return session
        case .opening(let task): return try await Self.value(of: task)
        }
    }

    /// `task.value`, except that a cancelled caller stops waiting at once;
    /// the task goes on for the other writers waiting on the same pair.
    private static func value(of task: Task<Session, any Error>) async throws -> Session {
        let (outcome, deliver) = AsyncThrowingStream.makeStream(of: Session.self)
        Task {
            deliver.yield(with: await task.result)
            deliver.finish()
        }
        var next = outcome.makeAsyncIterator()
        // The iterator ends, rather than waits, once this task is cancelled.
        guard let session = try await next.next() else { throw CancellationError() }
        return session
    }

    /// Ends `failed`'s call, then sets up a fresh pair and makes it current.
    private func open(after failed: Session?) async throws -> Session {
        if let failed {
            failed.call.cancel()
            await failed.call.value
        }
        let opened: Result<Session, any Error>
        do { opened = .success(try await connect()) } catch { opened = .failure(error) }
        let kept = state.withLock { state in
            state.opening = nil
            guard case .success(let session) = opened, !state.closed else { return false }
            state.current = session
            return true
        }
        let session = try opened.get()
        guard kept else {
            session.call.cancel()
            await session.call.value
            throw TransferError(.peerUnavailable, "the verbs link to \(connection.peer.hello.nodeName) closed while it set up a queue pair")
        }
        return session
    }

    /// One connect call: offers a new local queue pair, brings it up
    /// towards the target's answer, and keeps the call open in a task of
    /// its own until that task is cancelled.
    private func connect() async throws -> Session {
        let local = try endpoint.openQueuePair()
        var request = self.request
        request.queuePair = local
        let (answers, answer) = AsyncThrowingStream.makeStream(of: Loom_Transfer_VerbsConnectResponse.self)
        let call = Task { [connection, endpoint] in
            do {
                try await connection.serverStreaming(method: VerbsTarget.connectMethod, try RPCMessage(request)) { stream in
                    var answers = stream.makeAsyncIterator()
                    guard let reply = try await answers.next() else {
                        throw TransferError(.peerUnavailable, "\(connection.peer.hello.nodeName) ended the verbs connect call without answering")
                    }
                    let response: Loom_Transfer_VerbsConnectResponse = try reply.decode()
                    try endpoint.connect(local.qpNum, to: response.queuePair)
                    answer.yield(response)
                    answer.finish()
                    await untilCancelled()
                }
            } catch {
                answer.finish(throwing: error)
            }
            endpoint.closeQueuePair(local.qpNum)
        }
        let deadline = Task { [setupTimeout, name = connection.peer.hello.nodeName] in
            do { try await Task.sleep(for: setupTimeout) } catch { return }
            answer.finish(throwing: TransferError(.peerUnavailable, "\(name) did not answer the verbs connect call within \(setupTimeout); it is overloaded or stuck"))
        }
        defer { deadline.cancel() }
        do {
            var replies = answers.makeAsyncIterator()
            guard let response = try await replies.next() else { throw CancellationError() }
            return Session(qp: local.qpNum, owner: response.owner, epoch: response.epoch, call: call)
        } catch {
            call.cancel()
            await call.value
            if let error = error as? WireError {
                throw TransferError(.peerUnavailable, "\(connection.peer.hello.nodeName) did not set up a verbs queue pair: \(error.message)")
            }
            throw error
        }
    }
}
