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
    /// How many of the prompt's last tokens were generated earlier, by
    /// another worker, for this same request: sampling and the constraint
    /// pick up where they left off instead of starting over.
    public var resumedTokens: Int = 0
    /// Set on a prefill worker: the prompt's KV blocks go to the sink as
    /// its chunks are computed, all of them before the first token.
    public var exportKV: KVExport?
    /// Whose cached blocks the request may use (nil: the shared namespace).
    public var cacheNamespace: CacheNamespace?

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
    /// Sequences holding blocks for a remote prefill that has not landed yet.
    public var reserved: Int
    public var usedBlocks: Int
    public var blockCount: Int
    /// Full blocks the prefix cache can serve (referenced or not).
    public var cachedBlocks: Int = 0
    /// Cached blocks dropped to make room so far.
    public var evictedBlocks: Int = 0
    public var stats: SchedulerStats

    public init(running: Int = 0, waiting: Int = 0, reserved: Int = 0, usedBlocks: Int = 0, blockCount: Int = 0,
                cachedBlocks: Int = 0, stats: SchedulerStats = .init()) {
        self.cachedBlocks = cachedBlocks
        self.running = running
        self.waiting = waiting
        self.reserved = reserved
        self.usedBlocks = usedBlocks
        self.blockCount = blockCount
        self.stats = stats
    }
}

/// Messages from clients to the engine thread.
enum EngineCommand: Sendable {
    case submit(RequestID, GenerationRequest, AsyncThrowingStream<GenerationOutput, Error>.Continuation)
    case cancel(RequestID)
    case reserve(RequestID, GenerationRequest, CheckedContinuation<KVReservation, Error>)
    case attach(RequestID, firstToken: TokenID, logprob: Float, top: [Logprobs.Entry], AsyncThrowingStream<GenerationOutput, Error>.Continuation)
    case cachedPrefix([TokenID], CacheNamespace?, CheckedContinuation<Int, Never>)
    case importBlocks([PublishedBlock], KVImportFill, CheckedContinuation<Int, Never>)
    case dropCachedBlocks(CheckedContinuation<Int, Never>)
}

extension EngineCommand {
    /// Answers a command the engine will never run (it shut down).
    func refuse() {
        let error = SchedulerError(.unavailable, "the engine has shut down; retry on another server")
        switch self {
        case .submit(_, _, let continuation), .attach(_, _, _, _, let continuation): continuation.finish(throwing: error)
        case .reserve(_, _, let reply): reply.resume(throwing: error)
        case .cachedPrefix(_, _, let reply), .importBlocks(_, _, let reply), .dropCachedBlocks(let reply): reply.resume(returning: 0)
        case .cancel: break
        }
    }
}

/// Per-request state the engine thread keeps beside the scheduler's: the
/// sampler (its random state survives preemption) and the token history the
/// penalties look at.
struct RequestContext {
    var sampler: Sampler
    var history: [TokenID]
    var topLogprobs: Int
    var constraint: (any TokenConstraint)?
    /// Nil while a reservation waits for its remote prefill: nobody is
    /// listening yet.
    var continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation?

    init(_ request: GenerationRequest, vocabularySize: Int, continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation?) {
        sampler = Sampler(parameters: request.sampling, vocabularySize: vocabularySize)
        sampler.skip(samples: request.resumedTokens)
        history = request.prompt
        topLogprobs = request.topLogprobs
        constraint = request.constraint
        for token in request.prompt.suffix(request.resumedTokens) { constraint?.accept(token) }
        self.continuation = continuation
    }
}

/// The state only the engine thread touches: model, KV memory, scheduler and
/// request contexts. `schedule → execute → update`, one step at a time.
///
/// `@unchecked Sendable`: an instance is created by `InferenceEngine.init`,
/// handed to the engine thread's closure, and never touched by any other
/// thread afterwards — clients reach it only through the locked inbox.
final class EngineLoop: @unchecked Sendable {
    let runner: ModelRunner
    var scheduler: Scheduler
    var contexts: [RequestID: RequestContext] = [:]
    var exports = KVExports()
    /// Every block the pool caches goes here too, when set.
    var publishing: (any KVPublishSink)? {
        didSet { scheduler.pool.recordsCommits = publishing != nil }
    }
    var model: Transformer { runner.model }
    var memory: PagedKVMemory { runner.memory }

    /// Cache changes for the router, published by `deliver`.
    let cacheLog: KVCacheLog
    /// Makes the loop's state visible (metrics, load reports). `deliver`
    /// calls it before any client hears of a step, so a client that saw a
    /// token never reads a state from before that token's step.
    var publish: (EngineSnapshot) -> Void = { _ in }

    init(model: Transformer, configuration: SchedulerConfiguration, memory: PagedKVMemory?, cacheLog: KVCacheLog) throws {
        let memory = memory ?? PagedKVMemory(layout: KVCacheLayout(config: model.config), blockCount: configuration.blockCount)
        precondition(memory.blockCount == configuration.blockCount && memory.layout == KVCacheLayout(config: model.config, blockSize: configuration.blockSize),
                     "the KV memory's geometry does not match the model and scheduler configuration")
        self.runner = ModelRunner(model: model, memory: memory)
        self.scheduler = try Scheduler(configuration)
        self.cacheLog = cacheLog
    }

    func apply(_ command: EngineCommand) {
        switch command {
        case .submit(let id, let request, let continuation):
            do {
                try scheduler.submit(EngineRequest(request, id: id))
                contexts[id] = RequestContext(request, vocabularySize: model.config.vocabularySize, continuation: continuation)
                if let export = request.exportKV { exports.start(id, export) }
            } catch {
                continuation.finish(throwing: error)
            }
        case .cancel(let id):
            deliver(scheduler.cancel(id), logits: [:])
        case .reserve(let id, let request, let reply):
            do {
                let reservation = try scheduler.reserve(EngineRequest(request, id: id))
                contexts[id] = RequestContext(request, vocabularySize: model.config.vocabularySize, continuation: nil)
                reply.resume(returning: reservation)
            } catch {
                reply.resume(throwing: error)
            }
        case .attach(let id, let firstToken, let logprob, let top, let continuation):
            attach(id, firstToken: firstToken, logprob: logprob, top: top, continuation)
        case .cachedPrefix(let prompt, let namespace, let reply):
            reply.resume(returning: cachedPrefix(of: prompt, in: namespace))
        case .importBlocks(let blocks, let fill, let reply):
            reply.resume(returning: importBlocks(blocks, fill: fill))
        case .dropCachedBlocks(let reply):
            let dropped = scheduler.pool.dropUnreferenced()
            // Now, not at the next step: an idle worker's router must hear too.
            for change in scheduler.pool.drainEvents() { cacheLog.record(change) }
            reply.resume(returning: dropped)
        }
    }

    /// The remote prefill of a reservation landed: the sequence starts
    /// decoding after `firstToken`, which the prefill worker sampled.
    private func attach(_ id: RequestID, firstToken: TokenID, logprob: Float, top: [Logprobs.Entry], _ continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation) {
        guard contexts[id] != nil, contexts[id]!.continuation == nil else {
            continuation.finish(throwing: SchedulerError(.invalidRequest, "request \(id) holds no reservation here (expired or already attached); prefill it again"))
            return
        }
        contexts[id]!.continuation = continuation
        // The prefill worker drew the first token's sample.
        contexts[id]!.sampler.skip(samples: 1)
        do {
            deliver(try scheduler.admitReserved(id, firstToken: firstToken), logits: [id: (logprob, top)])
        } catch {
            contexts[id] = nil
            continuation.finish(throwing: error)
        }
    }

    /// One step: `schedule → execute → update`, then its outputs go out —
    /// KV to its sinks (a prefill's export, the blocks it made reusable to
    /// a publisher), tokens to their streams. A failed forward pass fails
    /// the requests in that step (their KV may be partly written) and
    /// leaves the engine serving others.
    func step() {
        let plan = scheduler.schedule()
        guard !plan.isEmpty else { return }
        let due = exports.due(plan, blockSize: memory.layout.blockSize)
        let sampled: SampledStep
        do {
            sampled = sample(try runner.execute(plan, exports: due.compactMap(\.forRanks)), for: plan)
        } catch {
            return fail(plan, error)
        }
        let events = scheduler.update(sampled.result)
        KVExports.export(due, from: memory)
        publishCommittedBlocks()
        deliver(events, logits: sampled.logprobs)
    }

    /// What sampling made of a step's logits: the tokens for the scheduler,
    /// and each one's log-probability and alternatives for its stream.
    struct SampledStep {
        var result: StepResult
        var logprobs: [RequestID: (Float, [Logprobs.Entry])]
    }

    /// Constrained decoding and sampling, as their own step: a constraint
    /// masks its row in place, then the request's sampler draws from it.
    private func sample(_ logits: UnsafeMutableBufferPointer<Float>, for plan: StepPlan) -> SampledStep {
        let vocabulary = model.config.vocabularySize
        var sampled = SampledStep(result: StepResult(sampled: []), logprobs: [:])
        for (row, id) in plan.logitRequests.enumerated() {
            let rowLogits = UnsafeMutableBufferPointer(rebasing: logits[(row * vocabulary)..<((row + 1) * vocabulary)])
            contexts[id]!.constraint?.mask(rowLogits)
            let (token, logprob, top) = sample(UnsafeBufferPointer(rowLogits), for: id)
            sampled.result.sampled.append(token)
            sampled.logprobs[id] = (logprob, top)
        }
        return sampled
    }

    private func fail(_ plan: StepPlan, _ error: Error) {
        for item in plan.items { contexts[item.id]?.continuation?.finish(throwing: error) }
        for item in plan.items { _ = scheduler.cancel(item.id) }
        _ = scheduler.update(StepResult(sampled: plan.logitRequests.map { _ in 0 }))
        for item in plan.items {
            contexts[item.id] = nil
            exports.stop(item.id)
        }
    }

    private func sample(_ logits: UnsafeBufferPointer<Float>, for id: RequestID) -> (TokenID, Float, [Logprobs.Entry]) {
        let token = contexts[id]!.sampler.sample(logits, history: contexts[id]!.history)
        return (token, Logprobs.of(token, in: logits), Logprobs.top(contexts[id]!.topLogprobs, in: logits))
    }

    private func deliver(_ events: [EngineEvent], logits: [RequestID: (Float, [Logprobs.Entry])]) {
        publish(snapshot)
        for event in events {
            switch event {
            case .token(let id, let token):
                contexts[id]?.history.append(token)
                contexts[id]?.constraint?.accept(token)
                let (logprob, top) = logits[id] ?? (0, [])
                contexts[id]?.continuation?.yield(.token(token, logprob: logprob, top: top))
            case .finished(let id, let reason, let usage):
                contexts[id]?.continuation?.yield(.finished(reason, usage))
                contexts[id]?.continuation?.finish()
                contexts[id] = nil
                exports.stop(id)
            case .cache(let change):
                cacheLog.record(change)
            }
        }
    }

    var isIdle: Bool { scheduler.isIdle }

    var snapshot: EngineSnapshot {
        var snapshot = EngineSnapshot(
            running: scheduler.runningIDs.count, waiting: scheduler.waitingIDs.count, reserved: scheduler.reservedIDs.count,
            usedBlocks: scheduler.pool.usedCount, blockCount: scheduler.configuration.blockCount,
            cachedBlocks: scheduler.pool.cachedBlockCount, stats: scheduler.stats)
        snapshot.evictedBlocks = scheduler.pool.evictions
        return snapshot
    }
}

extension EngineRequest {
    init(_ request: GenerationRequest, id: RequestID) {
        self.init(id: id, prompt: request.prompt, maxTokens: request.maxTokens, stopTokens: request.stopTokens, namespace: request.cacheNamespace)
    }
}

/// The worker's cache contents as the router must see them: every hash it
/// holds, and the changes not yet reported. Written by the engine thread,
/// read by whoever reports to the router.
final class KVCacheLog: Sendable {
    private struct State {
        var hashes: Set<BlockHash> = []
        var pending: [KVCacheEvent] = []
        var overflowed = false
    }

    /// Nobody drains the events of a `loom serve` (or of a worker cut off
    /// from its router), so they are capped; past the cap only a full
    /// snapshot can bring a reader up to date.
    static let pendingLimit = 65_536
    private let state = Mutex(State())

    func record(_ event: KVCacheEvent) {
        state.withLock { state in
            switch event {
            case .stored(let hash, _): state.hashes.insert(hash)
            case .removed(let hash): state.hashes.remove(hash)
            }
            if state.pending.count >= Self.pendingLimit {
                state.pending.removeAll()
                state.overflowed = true
            }
            if !state.overflowed { state.pending.append(event) }
        }
    }

    /// The events since the last drain, or nil if some were dropped (the
    /// reader must take a full snapshot instead).
    func drain() -> [KVCacheEvent]? {
        state.withLock { state in
            defer { state.pending.removeAll() }
            return state.overflowed ? nil : state.pending
        }
    }

    func hashesResettingEvents() -> Set<BlockHash> {
        state.withLock { state in
            state.pending.removeAll()
            state.overflowed = false
            return state.hashes
        }
    }
}
