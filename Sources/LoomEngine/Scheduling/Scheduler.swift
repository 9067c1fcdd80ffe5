import LoomModel

/// Counters for metrics (`loom_prefix_cache_*`, prompt/generated tokens).
public struct SchedulerStats: Sendable, Equatable {
    /// Prompt tokens looked up in the prefix cache at first admission.
    public var prefixQueriedTokens = 0
    /// Of those, tokens served from the cache.
    public var prefixHitTokens = 0
    /// Tokens the model computed (prefill chunks, recomputation and decodes).
    public var computedTokens = 0
    public var generatedTokens = 0
    public var preemptions = 0
    /// Prompt tokens whose KV another worker computed and wrote into this
    /// pool (disaggregated prefill); they never count as computed here.
    public var remotePrefilledTokens = 0

    public init() {}
}

/// The engine's scheduler as a value-type state machine: `submit` and
/// `cancel` change the queues, `schedule()` returns the next step's plan and
/// `update(_:)` applies what the step produced. It owns the block pool's
/// bookkeeping but no memory, threads or model, so everything it does can be
/// driven and checked by a test.
///
/// The engine loop is:
///     let plan = scheduler.schedule()
///     let sampled = try runner.execute(plan)      // forward + sample
///     for event in scheduler.update(sampled) { deliver(event) }
///
/// Between `schedule()` and `update(_:)` a plan is in flight: `submit` is
/// fine, and `cancel` is deferred to `update` because the step may be writing
/// the blocks the cancelled sequence holds.
public struct Scheduler: Sendable {
    public let configuration: SchedulerConfiguration
    public internal(set) var pool: BlockPool
    public internal(set) var stats = SchedulerStats()
    /// Sorted by arrival, so decodes and chunks are served oldest first.
    var running: [SequenceState] = []
    /// FCFS by arrival; preempted sequences go back to their place.
    var waiting: [SequenceState] = []
    /// Sequences whose prompt blocks are held for a remote prefill worker to
    /// fill; they count against `maxRunning` because each will run.
    var reserved: [SequenceState] = []
    var inFlight: StepPlan?
    var deferredTerminations: [(RequestID, FinishReason)] = []
    private var nextArrival: UInt64 = 0

    public init(_ configuration: SchedulerConfiguration) throws(SchedulerError) {
        try configuration.validate()
        self.configuration = configuration
        self.pool = BlockPool(blockCount: configuration.blockCount, blockSize: configuration.blockSize)
    }

    // MARK: Inspection

    public var runningIDs: [RequestID] { running.map(\.id) }
    public var waitingIDs: [RequestID] { waiting.map(\.id) }
    public var reservedIDs: [RequestID] { reserved.map(\.id) }
    /// Reservations need no steps: the engine can sleep while remote
    /// prefill workers fill them.
    public var isIdle: Bool { running.isEmpty && waiting.isEmpty }
    /// Block tables of every running sequence (waiting ones hold none).
    public var blockTables: [RequestID: [BlockID]] {
        Dictionary(uniqueKeysWithValues: running.map { ($0.id, $0.blockTable) })
    }

    // MARK: Requests

    /// Accepts a request into the waiting queue, or says why not. A refused
    /// request never enters the scheduler and gets no events.
    public mutating func submit(_ request: EngineRequest) throws(SchedulerError) {
        try check(request)
        guard waiting.count < configuration.maxWaiting else {
            throw SchedulerError(
                .overloaded,
                "\(waiting.count) requests are already waiting (the limit is \(configuration.maxWaiting)); retry after some finish")
        }
        waiting.append(SequenceState(request: request, arrival: takeArrival(), hasher: configuration.hasher))
    }

    mutating func takeArrival() -> UInt64 {
        defer { nextArrival += 1 }
        return nextArrival
    }

    func check(_ request: EngineRequest) throws(SchedulerError) {
        let total = request.prompt.count + request.maxTokens
        guard !request.prompt.isEmpty, request.maxTokens > 0 else {
            throw SchedulerError(
                .invalidRequest,
                "the prompt has \(request.prompt.count) tokens and \(request.maxTokens) were asked for; give at least one of each")
        }
        guard total <= configuration.contextLength else {
            throw SchedulerError(
                .contextOverflow,
                "the prompt has \(request.prompt.count) tokens and \(request.maxTokens) more were asked for, but the context is \(configuration.contextLength) tokens; ask for at most \(max(0, configuration.contextLength - request.prompt.count))")
        }
        let blocks = (total + configuration.blockSize - 1) / configuration.blockSize
        guard blocks <= configuration.blockCount else {
            throw SchedulerError(
                .exceedsKVCapacity,
                "the request needs \(blocks) KV blocks but the pool has \(configuration.blockCount); shorten it to \(configuration.blockCount * configuration.blockSize) tokens")
        }
        guard !(running + waiting + reserved).contains(where: { $0.id == request.id }) else {
            throw SchedulerError(.invalidRequest, "request \(request.id) is already in the scheduler; ids must be unique among live requests")
        }
    }

    /// Ends a request because its client went away. Unknown or finished ids
    /// are ignored: a disconnect can race with the request's last token.
    public mutating func cancel(_ id: RequestID) -> [EngineEvent] {
        finish(id, reason: .cancelled)
    }

    /// Ends a request for a reason found outside the scheduler (a stop
    /// string matched in the detokenized text ends it with `.stop`).
    public mutating func finish(_ id: RequestID, reason: FinishReason) -> [EngineEvent] {
        guard inFlight == nil else {
            deferredTerminations.append((id, reason))
            return []
        }
        return terminate(id, reason: reason)
    }

    mutating func terminate(_ id: RequestID, reason: FinishReason) -> [EngineEvent] {
        if let i = waiting.firstIndex(where: { $0.id == id }) {
            return [.finished(id, reason, waiting.remove(at: i).usage)]
        }
        if let i = running.firstIndex(where: { $0.id == id }) {
            let sequence = running.remove(at: i)
            pool.release(sequence.blockTable)
            return [.finished(id, reason, sequence.usage)]
        }
        if let i = reserved.firstIndex(where: { $0.id == id }) {
            let sequence = reserved.remove(at: i)
            pool.release(sequence.blockTable)
            return [.finished(id, reason, sequence.usage)]
        }
        return []
    }
}
