import NIOConcurrencyHelpers

/// Counts the writes that carried each 32-bit immediate. Completion is by
/// count, never by order: a receiver waits until `expected` writes with its
/// immediate have landed, however they were reordered on the way.
public final class ImmediateCounters: Sendable {
    private struct Waiter {
        let id: UInt64
        let immediate: UInt32
        let expected: Int
        let continuation: CheckedContinuation<Void, Error>
    }

    private struct State {
        var counts: [UInt32: Int] = [:]
        var waiters: [Waiter] = []
        var nextWaiter: UInt64 = 0
        /// Waiters cancelled before they could park; they must not park.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = NIOLockedValueBox(State())
    private let poller = NIOLockedValueBox<(any CompletionPoller)?>(nil)

    public init() {}

    /// Lets waiters poll `poller` for a while before they park: for a
    /// backend whose immediates arrive only when someone polls for them.
    public func pollWhileWaiting(_ poller: any CompletionPoller) {
        self.poller.withLockedValue { $0 = poller }
    }

    public func count(_ immediate: UInt32) -> Int {
        state.withLockedValue { $0.counts[immediate, default: 0] }
    }

    func record(_ immediate: UInt32) {
        let ready: [Waiter] = state.withLockedValue { state in
            state.counts[immediate, default: 0] += 1
            let count = state.counts[immediate]!
            let ready = state.waiters.filter { $0.immediate == immediate && $0.expected <= count }
            state.waiters.removeAll { $0.immediate == immediate && $0.expected <= count }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    /// Forgets an immediate's count once its request is done, so the value
    /// can be reused.
    public func reset(_ immediate: UInt32) {
        state.withLockedValue { _ = $0.counts.removeValue(forKey: immediate) }
    }

    /// Returns once `expected` writes carrying `immediate` have landed;
    /// throws `timedOut` (with how many did) if that takes longer than `timeout`.
    public func wait(for immediate: UInt32, count expected: Int, timeout: Duration) async throws {
        // Already there: no timer task to start and cancel.
        if count(immediate) >= expected { return }
        if let poller = poller.withLockedValue({ $0 }), poller.poll(until: { count(immediate) >= expected }) { return }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.waitUnbounded(immediate, expected) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TransferError(.timedOut, "immediate \(immediate): \(self.count(immediate)) of \(expected) writes arrived within \(timeout); a peer may have died")
            }
            defer { group.cancelAll() }
            try await group.next()!
        }
    }

    private func waitUnbounded(_ immediate: UInt32, _ expected: Int) async throws {
        let id = state.withLockedValue { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let done: Result<Void, Error>? = state.withLockedValue { state in
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if state.counts[immediate, default: 0] >= expected { return .success(()) }
                    state.waiters.append(Waiter(id: id, immediate: immediate, expected: expected, continuation: continuation))
                    return nil
                }
                if let done { continuation.resume(with: done) }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLockedValue { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelledEarly.insert(id)
                    return nil
                }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}

/// A backend whose completions arrive only when someone polls for them
/// (libfabric's manual progress). A waiter that polls them itself counts an
/// immediate that is about to land on its own thread, instead of being woken
/// from another.
public protocol CompletionPoller: Sendable {
    /// Polls until `done()`, blocking the calling thread (a cooperative
    /// one, in `wait`) for at most a short bound; returns `done()`.
    func poll(until done: () -> Bool) -> Bool
}
