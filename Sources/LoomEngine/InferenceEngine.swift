import Dispatch
import Foundation
import LoomModel
import Synchronization

/// Continuous batching over one model: requests from any task stream tokens
/// back while a single engine thread (not the cooperative pool, whose
/// threads must never block on a long matmul) runs the steps.
public final class InferenceEngine: Sendable {
    /// Commands for the engine thread; nil once it stopped taking them.
    private let inbox = Mutex<[EngineCommand]?>([])
    private let stopping = Atomic<Bool>(false)
    private let nextID = Atomic<UInt64>(1)
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let published: Mutex<EngineSnapshot>
    private let cacheLog = KVCacheLog()
    public let kvLayout: KVCacheLayout
    public let vocabularySize: Int
    public let contextLength: Int

    /// Loads nothing itself: give it a model and how to schedule, the KV
    /// pool's memory if it must live somewhere particular (a region peers
    /// write into), and where blocks it caches should also go, if anywhere.
    /// The engine thread starts at once and runs until `shutdown()`.
    public init(model: Transformer, configuration: SchedulerConfiguration, memory: PagedKVMemory? = nil,
                publishing: (any KVPublishSink)? = nil) throws {
        precondition(configuration.maxRunning <= model.maxLogitRows, "maxRunning \(configuration.maxRunning) exceeds the model's \(model.maxLogitRows) logit rows per step")
        let loop = try EngineLoop(model: model, configuration: configuration, memory: memory, cacheLog: cacheLog)
        loop.publishing = publishing
        kvLayout = loop.memory.layout
        published = Mutex(loop.snapshot)
        vocabularySize = model.config.vocabularySize
        contextLength = model.config.contextLength
        loop.publish = { [weak self] snapshot in self?.published.withLock { $0 = snapshot } }
        let thread = Thread { [self] in run(loop) }
        thread.name = "loom-engine"
        thread.start()
    }

    /// Starts a generation. The stream ends with `.finished`, or throws if the
    /// request is refused (a `SchedulerError` says why: overloaded, too long).
    /// Dropping the stream cancels the request.
    public func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationOutput, Error> {
        let id = RequestID(nextID.add(1, ordering: .relaxed).oldValue)
        let (stream, continuation) = AsyncThrowingStream<GenerationOutput, Error>.makeStream()
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.send(.cancel(id)) }
        }
        send(.submit(id, request, continuation))
        return stream
    }

    /// Holds KV blocks for `request`'s prompt for a remote prefill worker to
    /// fill (see `KVReservation`); the id in the reservation names it from
    /// here on. Throws a `SchedulerError` when it cannot be held now.
    public func reserve(_ request: GenerationRequest) async throws -> KVReservation {
        let id = RequestID(nextID.add(1, ordering: .relaxed).oldValue)
        return try await withCheckedThrowingContinuation { reply in
            send(.reserve(id, request, reply))
        }
    }

    /// Starts decoding a reservation whose blocks the prefill worker has
    /// written, after the `firstToken` it sampled. The stream starts with
    /// that token; dropping it cancels the request.
    public func attach(_ id: RequestID, firstToken: TokenID, logprob: Float, top: [Logprobs.Entry] = []) -> AsyncThrowingStream<GenerationOutput, Error> {
        let (stream, continuation) = AsyncThrowingStream<GenerationOutput, Error>.makeStream()
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.send(.cancel(id)) }
        }
        send(.attach(id, firstToken: firstToken, logprob: logprob, top: top, continuation))
        return stream
    }

    /// Ends a request or drops a reservation (its lease ran out); unknown
    /// ids are ignored.
    public func cancel(_ id: RequestID) {
        send(.cancel(id))
    }

    /// Cache changes since the last call, oldest first: what a worker
    /// reports to the router's prefix index. Nil when too many piled up
    /// unread and some were dropped: take `cachedHashesResettingEvents()`.
    public func drainCacheEvents() -> [KVCacheEvent]? {
        cacheLog.drain()
    }

    /// Every block hash the cache holds, for a full report (a worker
    /// registering, or re-registering with a restarted router); pending
    /// events are dropped because the snapshot already includes them.
    public func cachedHashesResettingEvents() -> Set<BlockHash> {
        cacheLog.hashesResettingEvents()
    }

    /// Stops the engine thread after the current step; requests still running
    /// are finished as cancelled.
    public func shutdown() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wake.signal()
        finished.wait()
    }

    /// The engine's state as of its last step: for metrics, status pages and
    /// tests that must see what the scheduler did.
    public var snapshot: EngineSnapshot { published.withLock { $0 } }

    func send(_ command: EngineCommand) {
        let accepted = inbox.withLock { inbox in
            inbox?.append(command)
            return inbox != nil
        }
        if accepted { wake.signal() } else { command.refuse() }
    }

    private func run(_ loop: EngineLoop) {
        while !stopping.load(ordering: .acquiring) {
            let commands = inbox.withLock { inbox in
                defer { inbox = [] }
                return inbox ?? []
            }
            for command in commands { loop.apply(command) }
            published.withLock { $0 = loop.snapshot }
            if loop.isIdle {
                wake.wait()
                continue
            }
            loop.step()
        }
        for id in loop.contexts.keys { loop.apply(.cancel(id)) }
        // Whatever arrived after the last step (and anything sent from now
        // on) is refused, so no caller waits on a thread that is gone.
        let unread = inbox.withLock { inbox in
            defer { inbox = nil }
            return inbox ?? []
        }
        for command in unread { command.refuse() }
        finished.signal()
    }
}
