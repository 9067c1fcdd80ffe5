import Testing
import LoomEngine
import LoomModel

private func configuration(
    blocks: Int = 256, budget: Int = 256, maxRunning: Int = 8, maxWaiting: Int = 64, context: Int = 4096
) -> SchedulerConfiguration {
    SchedulerConfiguration(
        blockCount: blocks, tokenBudget: budget, maxRunning: maxRunning, maxWaiting: maxWaiting,
        contextLength: context)
}

/// Distinct blocks held by running sequences.
private func heldBlocks(_ scheduler: Scheduler) -> Set<BlockID> {
    Set(scheduler.blockTables.values.joined())
}

@Suite struct SchedulerPreemptionTests {
    @Test func preemptionFreesBlocksAndRecomputeRestoresTheOutput() throws {
        // Each request needs 5 of the 6 blocks alone; together they cannot both fit.
        var h = try Harness(configuration(blocks: 6, budget: 64))
        try h.submit(1, prompt: tokens(30, seed: 1), maxTokens: 40)
        try h.submit(2, prompt: tokens(30, seed: 2), maxTokens: 40)
        var preemptedAt: Int?
        while !h.scheduler.isIdle {
            let plan = h.scheduler.schedule()
            if !plan.preempted.isEmpty {
                #expect(plan.preempted == [RequestID(2)], "the newest arrival yields")
                #expect(h.scheduler.waitingIDs == [RequestID(2)])
                #expect(h.scheduler.blockTables[RequestID(2)] == nil)
                #expect(h.scheduler.pool.usedCount == heldBlocks(h.scheduler).count, "the victim's blocks are free")
                #expect(!plan.items.contains { $0.id == RequestID(2) })
                preemptedAt = preemptedAt ?? h.tokens(2).count
            }
            let result = h.model.execute(plan, pool: h.scheduler.pool)
            h.events += h.scheduler.update(result)
            h.plans.append(plan)
        }
        let generatedBefore = try #require(preemptedAt)
        #expect(generatedBefore > 0, "request 2 was decoding when it was preempted")
        // Recompute replays prompt and generated tokens without re-emitting them.
        #expect(h.tokens(1) == h.reference(1) && h.tokens(2) == h.reference(2))
        #expect(h.finishes(2).map(\.0) == [.length] && h.finishes(2).map(\.1.completionTokens) == [40])
        let restart = try #require(h.items(2).dropFirst().first { $0.tokens.count > 1 })
        #expect(restart.tokens.count + restart.start == 30 + generatedBefore, "the recompute covers prompt and generated tokens")
        #expect(h.scheduler.stats.preemptions >= 1)
        #expect(h.scheduler.pool.usedCount == 0)
        #expect(h.model.violations.isEmpty)
    }

    @Test func aChunkShrinksToTheFreeBlocksInsteadOfPreempting() throws {
        // 7 blocks: request 2 needs all 7 alone, request 1 holds 2 until it ends.
        var h = try Harness(configuration(blocks: 7, budget: 40))
        try h.submit(1, prompt: tokens(20, seed: 1), maxTokens: 4)
        h.step()
        try h.submit(2, prompt: tokens(100, seed: 2), maxTokens: 2)
        h.runUntilIdle()
        // The third chunk fits the 2 free slots of its last block and waits
        // there for request 1 to finish, rather than evicting anyone.
        #expect(h.items(2).map(\.tokens.count) == [39, 39, 2, 20, 1])
        #expect(h.scheduler.stats.preemptions == 0)
        #expect(h.tokens(1) == h.reference(1) && h.tokens(2) == h.reference(2))
    }
}

/// A policy written for the test: the seam is a type, not a flag.
private struct OldestFirstPreemption: PreemptionPolicy {
    func victim(among candidates: [PreemptionCandidate]) -> Int {
        candidates.indices.min { candidates[$0].arrival < candidates[$1].arrival }!
    }
}

extension SchedulerPreemptionTests {
    @Test func thePreemptionPolicyChoosesTheVictim() throws {
        var c = configuration(blocks: 6, budget: 64)
        c.preemption = OldestFirstPreemption()
        var h = try Harness(c)
        try h.submit(1, prompt: tokens(30, seed: 1), maxTokens: 40)
        try h.submit(2, prompt: tokens(30, seed: 2), maxTokens: 40)
        h.runUntilIdle()
        #expect(h.plans.flatMap(\.preempted).first == RequestID(1))
        #expect(h.tokens(1) == h.reference(1) && h.tokens(2) == h.reference(2))
    }
}

@Suite struct SchedulerQueueTests {
    @Test func requestsStartAndFinishInArrivalOrder() throws {
        var h = try Harness(configuration(maxRunning: 1))
        for (id, length) in [(1, 50), (2, 5), (3, 20)] {
            try h.submit(UInt64(id), prompt: tokens(length, seed: TokenID(id)), maxTokens: 3)
        }
        h.runUntilIdle()
        var started: [RequestID] = []
        for item in h.plans.flatMap(\.items) where !started.contains(item.id) { started.append(item.id) }
        #expect(started == [1, 2, 3].map(RequestID.init))
        let finished = h.events.compactMap { if case .finished(let id, _, _) = $0 { id } else { nil } }
        #expect(finished == [1, 2, 3].map(RequestID.init))
    }

    @Test func theHeadOfTheQueueIsNotOvertakenWhenBlocksAreShort() throws {
        var h = try Harness(configuration(blocks: 8, budget: 256))
        try h.submit(1, prompt: tokens(70, seed: 1), maxTokens: 30)
        h.step()
        try h.submit(2, prompt: tokens(60, seed: 2), maxTokens: 1)
        try h.submit(3, prompt: tokens(5, seed: 3), maxTokens: 1)
        // 2 needs 4 blocks and 3 are free: 3 would fit but must wait its turn.
        h.step()
        #expect(h.scheduler.waitingIDs == [RequestID(2), RequestID(3)])
        h.runUntilIdle()
        let firstOf2 = h.plans.firstIndex { $0.items.contains { $0.id == RequestID(2) } }!
        let firstOf3 = h.plans.firstIndex { $0.items.contains { $0.id == RequestID(3) } }!
        #expect(firstOf2 <= firstOf3)
    }

    @Test func aFullWaitingQueueRefusesWithOverload() throws {
        var h = try Harness(configuration(maxRunning: 1, maxWaiting: 2))
        try h.submit(1, prompt: tokens(4, seed: 1), maxTokens: 5)
        try h.submit(2, prompt: tokens(4, seed: 2), maxTokens: 5)
        let error = #expect(throws: SchedulerError.self) { try h.submit(3, prompt: tokens(4, seed: 3), maxTokens: 5) }
        #expect(error?.code == .overloaded)
        h.step()
        try h.submit(3, prompt: tokens(4, seed: 3), maxTokens: 5)
        h.runUntilIdle()
        #expect(h.finishes(3).count == 1)
    }

    @Test func neverMoreThanMaxRunningSequences() throws {
        var h = try Harness(configuration(maxRunning: 2))
        for id in 1...5 { try h.submit(UInt64(id), prompt: tokens(8 * id, seed: TokenID(id)), maxTokens: 6) }
        while !h.scheduler.isIdle {
            let plan = h.step()
            #expect(Set(plan.items.map(\.id)).count <= 2)
            #expect(h.scheduler.runningIDs.count <= 2)
        }
        for id in 1...5 { #expect(h.tokens(UInt64(id)) == h.reference(UInt64(id))) }
    }

    @Test func badRequestsAndConfigurationsAreRefusedWithTheirNumbers() throws {
        var h = try Harness(configuration(blocks: 4, context: 100))
        let cases: [(prompt: Int, maxTokens: Int, code: SchedulerError.Code)] = [
            (0, 5, .invalidRequest), (5, 0, .invalidRequest), (90, 20, .contextOverflow), (60, 10, .exceedsKVCapacity),
        ]
        for c in cases {
            let error = #expect(throws: SchedulerError.self) { try h.submit(9, prompt: tokens(c.prompt, seed: 1), maxTokens: c.maxTokens) }
            #expect(error?.code == c.code)
        }
        try h.submit(1, prompt: tokens(4, seed: 1), maxTokens: 4)
        #expect(throws: SchedulerError.self) { try h.submit(1, prompt: tokens(4, seed: 1), maxTokens: 4) }
        let bad = #expect(throws: SchedulerError.self) {
            try Scheduler(SchedulerConfiguration(blockCount: 10, tokenBudget: 4, maxRunning: 8, contextLength: 100))
        }
        #expect(bad?.code == .invalidConfiguration)
        #expect(bad?.message.contains("tokenBudget 4 is below maxRunning 8") == true)
    }
}

@Suite struct SchedulerCancellationTests {
    @Test func cancellingAWaitingRequestEndsItWithoutRunningIt() throws {
        var h = try Harness(configuration(maxRunning: 1))
        try h.submit(1, prompt: tokens(10, seed: 1), maxTokens: 5)
        try h.submit(2, prompt: tokens(10, seed: 2), maxTokens: 5)
        h.step()
        let events = h.scheduler.cancel(RequestID(2))
        #expect(events == [.finished(RequestID(2), .cancelled, RequestUsage(promptTokens: 10, completionTokens: 0, cachedPromptTokens: 0))])
        h.events += events
        h.runUntilIdle()
        #expect(h.items(2).isEmpty)
        #expect(h.finishes(2).count == 1 && h.finishes(1).map(\.0) == [.length])
        #expect(h.scheduler.cancel(RequestID(2)).isEmpty, "a second cancel is a no-op")
    }

    @Test func cancellingARunningRequestFreesItsBlocks() throws {
        var h = try Harness(configuration())
        try h.submit(1, prompt: tokens(40, seed: 1), maxTokens: 100)
        for _ in 0..<3 { h.step() }
        #expect(h.scheduler.pool.usedCount == 3)
        h.events += h.scheduler.cancel(RequestID(1))
        #expect(h.scheduler.pool.usedCount == 0 && h.scheduler.isIdle)
        #expect(h.finishes(1).map(\.0) == [.cancelled])
        #expect(h.finishes(1).map(\.1.completionTokens) == [3])
        #expect(h.step().isEmpty)
    }

    @Test func aCancelDuringAStepTakesEffectWhenTheStepEnds() throws {
        var h = try Harness(configuration())
        try h.submit(1, prompt: tokens(20, seed: 1), maxTokens: 100)
        h.step()
        let plan = h.scheduler.schedule()
        #expect(h.scheduler.cancel(RequestID(1)).isEmpty, "the step may be writing its blocks")
        #expect(h.scheduler.pool.usedCount == 2)
        let events = h.scheduler.update(h.model.execute(plan, pool: h.scheduler.pool))
        // The token sampled in that step is dropped: nothing follows the end.
        #expect(events == [.finished(RequestID(1), .cancelled, RequestUsage(promptTokens: 20, completionTokens: 1, cachedPromptTokens: 0))])
        #expect(h.scheduler.pool.usedCount == 0)
    }

    @Test func aStopStringFoundByTheEngineEndsTheRequestWithStop() throws {
        var h = try Harness(configuration())
        try h.submit(1, prompt: tokens(12, seed: 1), maxTokens: 50)
        for _ in 0..<4 { h.step() }
        h.events += h.scheduler.finish(RequestID(1), reason: .stop)
        #expect(h.finishes(1).map(\.0) == [.stop] && h.finishes(1).map(\.1.completionTokens) == [4])
        #expect(h.scheduler.isIdle && h.scheduler.pool.usedCount == 0)
    }

    @Test func aStopTokenEndsTheRequestAndIsNotEmitted() throws {
        var h = try Harness(configuration())
        let prompt = tokens(12, seed: 1)
        let free = SimulatedModel.reference(EngineRequest(id: RequestID(0), prompt: prompt, maxTokens: 5))
        try #require(!free.prefix(2).contains(free[2]))
        try h.submit(1, prompt: prompt, maxTokens: 5, stop: [free[2]])
        h.runUntilIdle()
        #expect(h.tokens(1) == Array(free.prefix(2)))
        #expect(h.finishes(1).map(\.0) == [.stop])
        #expect(h.finishes(1).map(\.1.completionTokens) == [2])
    }
}

@Suite struct StepPlanTests {
    @Test func aPlanBecomesTheForwardBatchTheModelRuns() throws {
        var h = try Harness(configuration(budget: 8))
        try h.submit(1, prompt: tokens(3, seed: 1), maxTokens: 10)
        h.step()
        try h.submit(2, prompt: tokens(20, seed: 2), maxTokens: 10)
        let plan = h.scheduler.schedule()
        let batch = plan.forwardBatch()
        #expect(batch.tokens == [h.tokens(1)[0]] + tokens(7, seed: 2))
        #expect(batch.positions == [3] + (0..<7).map(Int32.init))
        #expect(batch.sequenceIndex == [0] + Array(repeating: 1, count: 7))
        #expect(batch.logitRows == [0], "the unfinished prefill chunk needs no logits")
        #expect(batch.sequences.map(\.blockTable) == [[0], [1]])
        #expect(plan.logitRequests == [RequestID(1)])
    }
}
