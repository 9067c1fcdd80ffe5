import NIOConcurrencyHelpers

/// The frames arriving for one call, bounded. `push` suspends while the
/// inbox is full; since one task reads the whole connection, a slow
/// consumer stops the socket being read and TCP pushes back on the server.
/// (Per-call credit flow control would avoid that head-of-line blocking;
/// it is not needed while streams are consumed promptly.)
final class CallInbox: Sendable {
    private struct State {
        var frames: [Frame] = []
        var terminal: Error?
        var finished = false
        var consumer: CheckedContinuation<Frame?, Error>?
        var producer: CheckedContinuation<Void, Never>?
    }

    private let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    func push(_ frame: Frame) async {
        // Suspending costs a trip through the executor even when resumed at
        // once, and nearly every frame finds room, so try without first.
        if tryPush(frame) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resume: (CheckedContinuation<Frame?, Error>?, Bool) = state.withLockedValue { state in
                guard !state.finished else { return (nil, true) }
                if let consumer = state.consumer {
                    state.consumer = nil
                    consumer.resume(returning: frame)
                    return (nil, true)
                }
                state.frames.append(frame)
                if state.frames.count < capacity { return (nil, true) }
                state.producer = continuation
                return (nil, false)
            }
            if resume.1 { continuation.resume() }
        }
    }

    /// Takes the frame unless that would fill the inbox (then `push` must
    /// wait, so that the reader stops reading).
    private func tryPush(_ frame: Frame) -> Bool {
        let (taken, consumer): (Bool, CheckedContinuation<Frame?, Error>?) = state.withLockedValue { state in
            if state.finished { return (true, nil) }
            if let consumer = state.consumer {
                state.consumer = nil
                return (true, consumer)
            }
            guard state.frames.count + 1 < capacity else { return (false, nil) }
            state.frames.append(frame)
            return (true, nil)
        }
        consumer?.resume(returning: frame)
        return taken
    }

    /// The next frame, nil once finished normally; throws the failure.
    func next() async throws -> Frame? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let result: Result<Frame?, Error>? = state.withLockedValue { state in
                    if !state.frames.isEmpty {
                        let frame = state.frames.removeFirst()
                        if let producer = state.producer {
                            state.producer = nil
                            producer.resume()
                        }
                        return .success(frame)
                    }
                    if let error = state.terminal { return .failure(error) }
                    if state.finished { return .success(nil) }
                    state.consumer = continuation
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            fail(CancellationError())
        }
    }

    /// Ends the inbox: waiting and later `next()` calls throw `error`
    /// (after buffered frames), and pushes are dropped.
    func fail(_ error: Error) {
        let (consumer, producer) = state.withLockedValue { state in
            if state.terminal == nil, !state.finished { state.terminal = error }
            state.finished = true
            defer { state.consumer = nil; state.producer = nil }
            return (state.consumer, state.producer)
        }
        consumer?.resume(throwing: error)
        producer?.resume()
    }
}
