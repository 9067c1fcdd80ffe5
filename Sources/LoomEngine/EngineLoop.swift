import Foundation
import LoomModel
import Synchronization

/// One generation as the engine's client asks for it.
public struct GenerationRequest: Sendable {
    public var prompt: [TokenID]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    public var stopTokens: Set<TokenID>
    /// How many most-likely alternatives to report with each token (0: none).
    public var topLogprobs: Int
    /// Limits which tokens may be sampled (e.g. JSON mode); nil allows all.
    public var constraint: (any TokenConstraint)?

    public init(
        prompt: [TokenID], maxTokens: Int, sampling: SamplingParameters = .init(),
        stopTokens: Set<TokenID> = [], topLogprobs: Int = 0, constraint: (any TokenConstraint)? = nil
    ) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.topLogprobs = topLogprobs
        self.constraint = constraint
    }
}

/// What a running generation streams back.
public enum GenerationOutput: Sendable, Equatable {
    /// A sampled token with its log-probability and, if asked for, the most
    /// likely alternatives at that step.
    case token(TokenID, logprob: Float, top: [Logprobs.Entry])
    /// The terminal state; nothing follows it.
    case finished(FinishReason, RequestUsage)
}

/// What the engine is doing, as of its last step.
public struct EngineSnapshot: Sendable, Equatable {
    public var running: Int
    public var waiting: Int
    public var usedBlocks: Int
    public var blockCount: Int
    public var stats: SchedulerStats
}

/// Messages from clients to the engine thread.
enum EngineCommand: Sendable {
    case submit(RequestID, GenerationRequest, AsyncThrowingStream<GenerationOutput, Error>.Continuation)
    case cancel(RequestID)
    case finish(RequestID, FinishReason)
}

/// Per-request state the engine thread keeps beside the scheduler's: the
/// sampler (its random state survives preemption) and the token history the
/// penalties look at.
struct RequestContext {
    var sampler: Sampler
    var history: [TokenID]
    var topLogprobs: Int
    var constraint: (any TokenConstraint)?
    let continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation
}

/// The state only the engine thread touches: model, KV memory, scheduler and
/// request contexts. `schedule → execute → update`, one step at a time.
///
/// `@unchecked Sendable`: an instance is created by `InferenceEngine.init`,
/// handed to the engine thread's closure, and never touched by any other
/// thread afterwards — clients reach it only through the locked inbox.
final class EngineLoop: @unchecked Sendable {
    let model: Transformer
    let memory: PagedKVMemory
    var scheduler: Scheduler
    var contexts: [RequestID: RequestContext] = [:]

    init(model: Transformer, configuration: SchedulerConfiguration) throws {
        self.model = model
        self.memory = PagedKVMemory(layout: KVCacheLayout(config: model.config), blockCount: configuration.blockCount)
        self.scheduler = try Scheduler(configuration)
    }

    func apply(_ command: EngineCommand) {
        switch command {
        case .submit(let id, let request, let continuation):
            do {
                try scheduler.submit(EngineRequest(id: id, prompt: request.prompt, maxTokens: request.maxTokens, stopTokens: request.stopTokens))
                contexts[id] = RequestContext(
                    sampler: Sampler(parameters: request.sampling, vocabularySize: model.config.vocabularySize),
                    history: request.prompt, topLogprobs: request.topLogprobs, constraint: request.constraint,
                    continuation: continuation)
            } catch {
                continuation.finish(throwing: error)
            }
        case .cancel(let id):
            deliver(scheduler.cancel(id), logits: [:])
        case .finish(let id, let reason):
            deliver(scheduler.finish(id, reason: reason), logits: [:])
        }
    }

    /// Runs one step. A failed forward pass fails the requests in that step
    /// (their KV may be partly written) and leaves the engine serving others.
    func step() {
        let plan = scheduler.schedule()
        guard !plan.isEmpty else { return }
        let vocabulary = model.config.vocabularySize
        var sampled: [TokenID] = []
        var logitsByRequest: [RequestID: (Float, [Logprobs.Entry])] = [:]
        do {
            let logits = try model.forward(plan.forwardBatch(), kv: memory.memory)
            for (row, id) in plan.logitRequests.enumerated() {
                let rowLogits = UnsafeBufferPointer(rebasing: logits[(row * vocabulary)..<((row + 1) * vocabulary)])
                let (token, logprob, top): (TokenID, Float, [Logprobs.Entry])
                if let constraint = contexts[id]!.constraint {
                    // Masked in a copy: the logits buffer is the model's scratch.
                    var masked = Array(rowLogits)
                    masked.withUnsafeMutableBufferPointer { constraint.mask($0) }
                    (token, logprob, top) = masked.withUnsafeBufferPointer { sample($0, for: id) }
                } else {
                    (token, logprob, top) = sample(rowLogits, for: id)
                }
                sampled.append(token)
                logitsByRequest[id] = (logprob, top)
            }
        } catch {
            for item in plan.items { contexts[item.id]?.continuation.finish(throwing: error) }
            sampled = plan.logitRequests.map { _ in 0 }
            for item in plan.items { _ = scheduler.cancel(item.id) }
            _ = scheduler.update(StepResult(sampled: sampled))
            for item in plan.items { contexts[item.id] = nil }
            return
        }
        deliver(scheduler.update(StepResult(sampled: sampled)), logits: logitsByRequest)
    }

    private func sample(_ logits: UnsafeBufferPointer<Float>, for id: RequestID) -> (TokenID, Float, [Logprobs.Entry]) {
        let token = contexts[id]!.sampler.sample(logits, history: contexts[id]!.history)
        return (token, Logprobs.of(token, in: logits), Logprobs.top(contexts[id]!.topLogprobs, in: logits))
    }

    private func deliver(_ events: [EngineEvent], logits: [RequestID: (Float, [Logprobs.Entry])]) {
        for event in events {
            switch event {
            case .token(let id, let token):
                contexts[id]?.history.append(token)
                contexts[id]?.constraint?.accept(token)
                let (logprob, top) = logits[id] ?? (0, [])
                contexts[id]?.continuation.yield(.token(token, logprob: logprob, top: top))
            case .finished(let id, let reason, let usage):
                contexts[id]?.continuation.yield(.finished(reason, usage))
                contexts[id]?.continuation.finish()
                contexts[id] = nil
            case .cache:
                break
            }
        }
    }

    var isIdle: Bool { scheduler.isIdle }

    var snapshot: EngineSnapshot {
        EngineSnapshot(
            running: scheduler.runningIDs.count, waiting: scheduler.waitingIDs.count,
            usedBlocks: scheduler.pool.usedCount, blockCount: scheduler.configuration.blockCount,
            stats: scheduler.stats)
    }
}
