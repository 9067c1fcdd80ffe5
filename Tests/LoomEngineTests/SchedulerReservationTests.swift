import Testing
import LoomEngine
import LoomModel

/// The decode side of disaggregated prefill: blocks are reserved, filled
/// by someone else, then the sequence decodes without recomputing them.
@Suite struct SchedulerReservationTests {
    private func configuration(blocks: Int = 64, maxRunning: Int = 4) -> SchedulerConfiguration {
        SchedulerConfiguration(blockCount: blocks, tokenBudget: 64, maxRunning: maxRunning, maxWaiting: 16, contextLength: 1024)
    }

    /// Reserves, writes the prompt as a prefill worker would, and admits
    /// with the token that worker sampled.
    private func prefillRemotely(_ h: inout Harness, _ id: UInt64, prompt: [TokenID], maxTokens: Int) throws -> KVReservation {
        let request = EngineRequest(id: RequestID(id), prompt: prompt, maxTokens: maxTokens)
        h.requests[id] = request
        let reservation = try h.scheduler.reserve(request)
        let start = reservation.cachedBlocks * 16
        h.model.write(Array(prompt[start...]), from: start, blockTable: reservation.blockTable)
        h.events += try h.scheduler.admitReserved(RequestID(id), firstToken: SimulatedModel.next(after: prompt))
        return reservation
    }

    @Test func aRemotelyPrefilledSequenceDecodesWithoutRecomputingItsPrompt() throws {
        var h = try Harness(configuration())
        let reservation = try prefillRemotely(&h, 1, prompt: tokens(40, seed: 1), maxTokens: 10)
        #expect(reservation.blockTable.count == 3 && reservation.cachedBlocks == 0)
        #expect(h.scheduler.runningIDs == [RequestID(1)])
        h.runUntilIdle()
        #expect(h.tokens(1) == h.reference(1), "decoding reads the written KV through the reserved table")
        #expect(h.model.violations.isEmpty)
        // Only decodes ran here: every generated token but the last was fed once.
        #expect(h.scheduler.stats.computedTokens == 9)
        #expect(h.scheduler.stats.remotePrefilledTokens == 40)
        #expect(h.plans.allSatisfy { $0.items.allSatisfy { $0.tokens.count == 1 } })
    }

    @Test func aReservationReusesThisWorkersCachedPrefix() throws {
        var h = try Harness(configuration())
        _ = try prefillRemotely(&h, 1, prompt: tokens(40, seed: 1), maxTokens: 2)
        h.runUntilIdle()
        #expect(h.cacheEvents.filter { if case .stored = $0 { true } else { false } }.count == 2, "full prompt blocks were cached on admission")
        let second = try prefillRemotely(&h, 2, prompt: tokens(40, seed: 1), maxTokens: 3)
        #expect(second.cachedBlocks == 2 && second.blocksToFill.count == 1, "only the block with the last prompt token is written")
        h.runUntilIdle()
        #expect(h.tokens(2) == h.reference(2))
        #expect(h.model.violations.isEmpty)
        #expect(h.scheduler.stats.prefixHitTokens == 32)
    }

    @Test func anExpiredReservationFreesItsBlocksAndCannotBeAdmitted() throws {
        var h = try Harness(configuration())
        let reservation = try h.scheduler.reserve(EngineRequest(id: RequestID(7), prompt: tokens(40, seed: 3), maxTokens: 4))
        #expect(h.scheduler.pool.usedCount == reservation.blockTable.count)
        let events = h.scheduler.cancel(RequestID(7))
        #expect(events.count == 1 && events.first.map { if case .finished(RequestID(7), .cancelled, _) = $0 { true } else { false } } == true)
        #expect(h.scheduler.pool.usedCount == 0)
        #expect(throws: SchedulerError.self) { try h.scheduler.admitReserved(RequestID(7), firstToken: 1) }
    }

    @Test func reservationsHoldRunningSlots() throws {
        var h = try Harness(configuration(maxRunning: 1))
        _ = try h.scheduler.reserve(EngineRequest(id: RequestID(1), prompt: tokens(20, seed: 1), maxTokens: 4))
        let refused = #expect(throws: SchedulerError.self) {
            try h.scheduler.reserve(EngineRequest(id: RequestID(2), prompt: tokens(20, seed: 2), maxTokens: 4))
        }
        #expect(refused?.code == .overloaded)
        try h.submit(3, prompt: tokens(20, seed: 3), maxTokens: 4)
        h.step()
        #expect(h.scheduler.runningIDs.isEmpty && h.scheduler.waitingIDs == [RequestID(3)], "a waiting request does not take a reserved slot")
    }

    @Test func aReservationThatCannotGetItsBlocksIsRefusedNotQueued() throws {
        var h = try Harness(configuration(blocks: 4))
        _ = try h.scheduler.reserve(EngineRequest(id: RequestID(1), prompt: tokens(40, seed: 1), maxTokens: 4))
        let refused = #expect(throws: SchedulerError.self) {
            try h.scheduler.reserve(EngineRequest(id: RequestID(2), prompt: tokens(40, seed: 2), maxTokens: 4))
        }
        #expect(refused?.code == .overloaded)
        #expect(h.scheduler.reservedIDs == [RequestID(1)])
    }
}

/// A burst of requests sharing a prompt prefix computes it once.
@Suite struct SharedPrefixBurstTests {
    @Test func aRequestWaitsForThePrefixARunningSequenceIsComputing() throws {
        var h = try Harness(SchedulerConfiguration(blockCount: 64, tokenBudget: 40, maxRunning: 4, maxWaiting: 16, contextLength: 1024))
        let system = tokens(64, seed: 9)
        try h.submit(1, prompt: system + tokens(5, seed: 1), maxTokens: 3)
        try h.submit(2, prompt: system + tokens(7, seed: 2), maxTokens: 3)
        h.step()
        #expect(h.scheduler.runningIDs == [RequestID(1)], "request 2 waits: its first block is being computed by request 1")
        h.runUntilIdle()
        #expect(h.tokens(1) == h.reference(1) && h.tokens(2) == h.reference(2))
        #expect(h.finishes(2).first?.1.cachedPromptTokens == 64, "the shared blocks were computed once")
        #expect(h.scheduler.stats.computedTokens == 69 + 7 + 2 * 2)
        #expect(h.model.violations.isEmpty)
    }
}
