import Dispatch
import Foundation
import LoomModel
import Synchronization

/// Continuous batching over one model: requests from any task stream tokens
/// back while a single engine thread (not the cooperative pool, whose
/// threads must never block on a long matmul) runs the steps.
public final class InferenceEngine: Sendable {
    private let inbox = Mutex<[EngineCommand]>([])
    private let stopping = Atomic<Bool>(false)
    private let nextID = Atomic<UInt64>(1)
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let published: Mutex<EngineSnapshot>
    public let vocabularySize: Int
    public let contextLength: Int

    /// Loads nothing itself: give it a model and how to schedule. The engine
    /// thread starts at once and runs until `shutdown()`.
    public init(model: Transformer, configuration: SchedulerConfiguration) throws {
        precondition(configuration.maxRunning <= model.maxLogitRows, "maxRunning \(configuration.maxRunning) exceeds the model's \(model.maxLogitRows) logit rows per step")
        let loop = try EngineLoop(model: model, configuration: configuration)
        published = Mutex(loop.snapshot)
        vocabularySize = model.config.vocabularySize
        contextLength = model.config.contextLength
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

    private func send(_ command: EngineCommand) {
        inbox.withLock { $0.append(command) }
        wake.signal()
    }

    private func run(_ loop: EngineLoop) {
        while !stopping.load(ordering: .acquiring) {
            let commands = inbox.withLock { inbox in
                defer { inbox.removeAll() }
                return inbox
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
        finished.signal()
    }
}
