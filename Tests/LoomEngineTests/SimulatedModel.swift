import LoomEngine
import LoomModel

/// A stand-in for the model that makes block-table mistakes visible: its
/// "KV memory" stores the token written at each slot, and the next token is
/// a hash of the tokens read back through the block table. A wrong table,
/// a shared block with the wrong content or a write into a cached block
/// changes the output or is recorded as a violation.
struct SimulatedModel {
    let blockSize: Int
    private var slots: [[TokenID?]]
    private(set) var violations: [String] = []

    init(blockCount: Int, blockSize: Int = 16) {
        self.blockSize = blockSize
        slots = Array(repeating: Array(repeating: nil, count: blockSize), count: blockCount)
    }

    /// The token a sequence with these tokens samples next.
    static func next(after history: some Sequence<TokenID>) -> TokenID {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for token in history { h = (h ^ UInt64(UInt32(bitPattern: token))) &* 0x100_0000_01B3 }
        return TokenID(1 + (h >> 33) % 997)
    }

    /// What a sequence generates alone: the ground truth for any schedule.
    static func reference(_ request: EngineRequest) -> [TokenID] {
        var history = request.prompt
        var output: [TokenID] = []
        while output.count < request.maxTokens {
            let token = next(after: history)
            if request.stopTokens.contains(token) { break }
            output.append(token)
            history.append(token)
        }
        return output
    }

    /// What a remote prefill worker's one-sided writes do: tokens land in
    /// the slots of `blockTable` from position `start` on.
    mutating func write(_ tokens: [TokenID], from start: Int, blockTable: [BlockID]) {
        for (offset, token) in tokens.enumerated() {
            let position = start + offset
            slots[Int(blockTable[position / blockSize])][position % blockSize] = token
        }
    }

    mutating func execute(_ plan: StepPlan, pool: BlockPool) -> StepResult {
        var sampled: [TokenID] = []
        for item in plan.items {
            for (offset, token) in item.tokens.enumerated() {
                let position = item.start + offset
                let block = Int(item.blockTable[position / blockSize])
                if pool.hash(of: BlockID(block)) != nil {
                    violations.append("\(item.id) wrote position \(position) into cached block \(block)")
                }
                slots[block][position % blockSize] = token
            }
            guard item.needsLogits else { continue }
            var history: [TokenID] = []
            for position in 0..<(item.start + item.tokens.count) {
                guard let token = slots[Int(item.blockTable[position / blockSize])][position % blockSize] else {
                    violations.append("\(item.id) read unwritten position \(position)")
                    continue
                }
                history.append(token)
            }
            sampled.append(Self.next(after: history))
        }
        return StepResult(sampled: sampled)
    }
}

/// Drives a scheduler against the simulated model and records everything.
struct Harness {
    var scheduler: Scheduler
    var model: SimulatedModel
    var events: [EngineEvent] = []
    var plans: [StepPlan] = []
    var requests: [UInt64: EngineRequest] = [:]

    init(_ configuration: SchedulerConfiguration) throws {
        scheduler = try Scheduler(configuration)
        model = SimulatedModel(blockCount: configuration.blockCount, blockSize: configuration.blockSize)
    }

    mutating func submit(_ id: UInt64, prompt: [TokenID], maxTokens: Int, stop: Set<TokenID> = [], namespace: CacheNamespace? = nil) throws {
        let request = EngineRequest(id: RequestID(id), prompt: prompt, maxTokens: maxTokens, stopTokens: stop, namespace: namespace)
        try scheduler.submit(request)
        requests[id] = request
    }

    /// What request `id` generates when run alone.
    func reference(_ id: UInt64) -> [TokenID] {
        SimulatedModel.reference(requests[id]!)
    }

    @discardableResult
    mutating func step() -> StepPlan {
        let plan = scheduler.schedule()
        let result = model.execute(plan, pool: scheduler.pool)
        events += scheduler.update(result)
        plans.append(plan)
        return plan
    }

    mutating func runUntilIdle(limit: Int = 10_000) {
        var steps = 0
        while !scheduler.isIdle && steps < limit {
            step()
            steps += 1
        }
    }

    func tokens(_ id: UInt64) -> [TokenID] {
        events.compactMap { if case .token(RequestID(id), let t) = $0 { t } else { nil } }
    }

    func finishes(_ id: UInt64) -> [(FinishReason, RequestUsage)] {
        events.compactMap { if case .finished(RequestID(id), let r, let u) = $0 { (r, u) } else { nil } }
    }

    var cacheEvents: [KVCacheEvent] {
        events.compactMap { if case .cache(let e) = $0 { e } else { nil } }
    }

    /// Items of request `id` in every recorded plan.
    func items(_ id: UInt64) -> [StepPlan.Item] {
        plans.flatMap { $0.items.filter { $0.id == RequestID(id) } }
    }
}

/// Distinct token runs for prompts, so tests control what is shared.
func tokens(_ count: Int, seed: TokenID) -> [TokenID] {
    (0..<count).map { seed * 1000 + TokenID($0) }
}
