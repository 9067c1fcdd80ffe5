import Testing
import LoomEngine
import LoomModel

/// Random traffic against the scheduler and the simulated model, with every
/// invariant checked after every step. Seeded, so a failure replays exactly.
@Suite struct SchedulerPropertyTests {
    static let configuration = SchedulerConfiguration(
        blockCount: 24, tokenBudget: 40, maxRunning: 6, maxWaiting: 6, contextLength: 200)

    @Test(arguments: [1, 2, 3] as [UInt64])
    func randomTrafficKeepsEveryInvariant(seed: UInt64) throws {
        var traffic = Traffic(seed: seed)
        var h = try Harness(Self.configuration)
        var ledger = Ledger()
        for _ in 0..<3000 {
            try traffic.arrive(&h, &ledger)
            try traffic.step(&h, &ledger)
        }
        var drain = 0
        while !h.scheduler.isIdle && drain < 2000 {
            try traffic.step(&h, &ledger, arrivals: false)
            drain += 1
        }
        #expect(h.scheduler.isIdle && h.scheduler.pool.usedCount == 0)
        try ledger.checkOutcomes(h)
        // The run must have reached the paths it is meant to check.
        let stats = h.scheduler.stats
        #expect(stats.preemptions > 10 && stats.prefixHitTokens > 1000)
        #expect(ledger.rejected > 10 && ledger.cancelled > 10 && ledger.stopped > 10)
    }
}

/// What each request should have seen, built from the events alone.
struct Ledger {
    var accepted: Set<RequestID> = []
    var finished: [RequestID: FinishReason] = [:]
    var tokens: [RequestID: [TokenID]] = [:]
    var rejected = 0
    var cancelled = 0
    var stopped = 0
    var router: Set<BlockHash> = []

    mutating func record(_ events: [EngineEvent]) throws {
        for event in events {
            switch event {
            case .token(let id, let token):
                try #require(accepted.contains(id) && finished[id] == nil, "token for \(id) after it finished")
                tokens[id, default: []].append(token)
            case .finished(let id, let reason, _):
                try #require(finished[id] == nil, "\(id) finished twice")
                finished[id] = reason
                if reason == .cancelled { cancelled += 1 }
                if reason == .stop { stopped += 1 }
            case .cache(.stored(let hash, _)):
                try #require(router.insert(hash).inserted, "stored \(hash) twice without a removal")
            case .cache(.removed(let hash)):
                try #require(router.remove(hash) != nil, "removed \(hash) that was never stored")
            }
        }
    }

    func checkOutcomes(_ h: Harness) throws {
        #expect(Set(finished.keys) == accepted, "every accepted request ends exactly once")
        for id in accepted {
            let reference = h.reference(id.rawValue), got = tokens[id] ?? []
            switch finished[id] {
            case .cancelled: #expect(Array(reference.prefix(got.count)) == got, "\(id)")
            case .length: #expect(got == reference && got.count == h.requests[id.rawValue]!.maxTokens, "\(id)")
            case .stop: #expect(got == reference && got.count < h.requests[id.rawValue]!.maxTokens, "\(id)")
            case nil: Issue.record("\(id) never finished")
            }
        }
    }
}

/// Seeded arrivals, cancellations and steps.
struct Traffic {
    var random: RandomSource
    var nextID: UInt64 = 1
    let prefixes: [[TokenID]]
    /// Sequences that sampled last step and have not finished: each must be
    /// in the next plan unless that plan preempts it.
    var decoding: Set<RequestID> = []

    init(seed: UInt64) {
        random = RandomSource(seed: seed)
        prefixes = [tokens(16, seed: 900), tokens(33, seed: 901), tokens(48, seed: 902)]
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func chance(_ p: Float) -> Bool { random.unit() < p }

    mutating func arrive(_ h: inout Harness, _ ledger: inout Ledger) throws {
        guard chance(0.35) else { return }
        var prompt = chance(0.6) ? prefixes[int(0...2)] : []
        prompt += (0..<int(prompt.isEmpty ? 1...80 : 0...30)).map { _ in TokenID(int(1...50)) }
        let maxTokens = int(1...min(60, 200 - prompt.count))
        var stop: Set<TokenID> = []
        if chance(0.2) {
            let free = SimulatedModel.reference(EngineRequest(id: RequestID(0), prompt: prompt, maxTokens: maxTokens))
            stop = [free[int(0...free.count - 1)]]
        }
        let id = nextID
        nextID += 1
        do {
            try h.submit(id, prompt: prompt, maxTokens: maxTokens, stop: stop)
            ledger.accepted.insert(RequestID(id))
        } catch let error as SchedulerError {
            try #require(error.code == .overloaded, "\(error)")
            ledger.rejected += 1
        }
    }

    mutating func cancelSomeone(_ h: inout Harness, _ ledger: inout Ledger) throws {
        let live = (h.scheduler.runningIDs + h.scheduler.waitingIDs).sorted()
        guard !live.isEmpty else { return }
        try ledger.record(h.scheduler.cancel(live[int(0...live.count - 1)]))
    }

    mutating func step(_ h: inout Harness, _ ledger: inout Ledger, arrivals: Bool = true) throws {
        if arrivals && chance(0.03) { try cancelSomeone(&h, &ledger) }
        let plan = h.scheduler.schedule()
        try checkPlan(plan, h, ledger)
        // A client may go away while the step runs.
        if arrivals && chance(0.02) { try cancelSomeone(&h, &ledger) }
        let events = h.scheduler.update(h.model.execute(plan, pool: h.scheduler.pool))
        try ledger.record(events)
        decoding = Set(plan.logitRequests).filter { ledger.finished[$0] == nil }
        try checkState(h, ledger)
    }

    func checkPlan(_ plan: StepPlan, _ h: Harness, _ ledger: Ledger) throws {
        let c = h.scheduler.configuration
        let ids = plan.items.map(\.id)
        try #require(plan.tokenCount <= c.tokenBudget)
        try #require(!plan.isEmpty || h.scheduler.isIdle, "work is queued but the step does nothing")
        try #require(Set(ids).count == ids.count && ids.count <= c.maxRunning)
        let missing = decoding.subtracting(ids).subtracting(plan.preempted).filter { ledger.finished[$0] == nil }
        try #require(missing.isEmpty, "decodes \(missing) were left out of a step")
    }

    func checkState(_ h: Harness, _ ledger: Ledger) throws {
        let pool = h.scheduler.pool, tables = h.scheduler.blockTables
        var holders: [BlockID: [(RequestID, Int)]] = [:]
        for (id, table) in tables {
            try #require(Set(table).count == table.count, "\(id) holds a block twice")
            for (i, block) in table.enumerated() { holders[block, default: []].append((id, i)) }
        }
        for block in 0..<BlockID(pool.blockCount) {
            let held = holders[block] ?? []
            try #require(pool.refCount(block) == held.count, "block \(block): refcount \(pool.refCount(block)), in \(held.count) tables")
            if held.count > 1 {
                try #require(pool.hash(of: block) != nil, "block \(block) is shared but not a cached prefix")
                try #require(Set(held.map(\.1)).count == 1, "shared block \(block) sits at different positions")
            }
        }
        try #require(pool.usedCount == holders.count && pool.freeCount + pool.usedCount == pool.blockCount)
        try #require(h.scheduler.runningIDs.count <= h.scheduler.configuration.maxRunning)
        try #require(ledger.router == pool.cachedHashes, "the router's replayed index differs from the pool")
        try #require(h.model.violations.isEmpty, "\(h.model.violations.prefix(3))")
    }
}
