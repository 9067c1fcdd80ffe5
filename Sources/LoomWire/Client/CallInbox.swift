import NIOConcurrencyHelpers

/// The frames arriving for one call, bounded. When a frame fills the
/// inbox, the connection's `ReplyRouter` stops reading the socket until the
/// call takes one, so a slow consumer pushes back on the server through TCP.
/// (Per-call credit flow control would avoid that head-of-line blocking;
/// it is not needed while streams are consumed promptly.)
final class CallInbox: Sendable {
    private struct State {
        var frames: [Frame] = []
        var terminal: Error?
        var finished = false
        var consumer: UnsafeContinuation<Frame?, Error>?
        /// Set while the inbox is full: says there is room again.
        var onRoom: (@Sendable () -> Void)?
    }

    private let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Takes the frame (or drops it, once the call is finished). False when
    /// the inbox is now full: `onRoom` runs, on whichever thread makes room,
    /// when it no longer is.
    func offer(_ frame: Frame, onRoom: @escaping @Sendable () -> Void) -> Bool {
        let (consumer, hasRoom): (UnsafeContinuation<Frame?, Error>?, Bool) = state.withLockedValue { state in
            if state.finished { return (nil, true) }
            if let consumer = state.consumer {
                state.consumer = nil
                return (consumer, true)
            }
            state.frames.append(frame)
            guard state.frames.count >= capacity else { return (nil, true) }
            state.onRoom = onRoom
            return (nil, false)
        }
        consumer?.resume(returning: frame)
        return hasRoom
    }

    /// The next frame, nil once finished normally; throws the failure.
    func next() async throws -> Frame? {
        try await withTaskCancellationHandler {
            // Unsafe, not checked: `state` holds the continuation, and every
            // path that takes it out of there resumes it exactly once.
            try await withUnsafeThrowingContinuation { continuation in
                let (result, onRoom): (Result<Frame?, Error>?, (@Sendable () -> Void)?) = state.withLockedValue { state in
                    if !state.frames.isEmpty {
                        let frame = state.frames.removeFirst()
                        defer { state.onRoom = nil }
                        return (.success(frame), state.onRoom)
                    }
                    if let error = state.terminal { return (.failure(error), nil) }
                    if state.finished { return (.success(nil), nil) }
                    state.consumer = continuation
                    return (nil, nil)
                }
                onRoom?()
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            fail(CancellationError())
        }
    }

    /// Ends the inbox: waiting and later `next()` calls throw `error`
    /// (after buffered frames), and later frames are dropped, so a reader
    /// held back by this inbox is let go.
    func fail(_ error: Error) {
        let (consumer, onRoom) = state.withLockedValue { state in
            if state.terminal == nil, !state.finished { state.terminal = error }
            state.finished = true
            defer { state.consumer = nil; state.onRoom = nil }
            return (state.consumer, state.onRoom)
        }
        consumer?.resume(throwing: error)
        onRoom?()
    }
}
