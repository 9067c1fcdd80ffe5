import LoomCluster
import Testing

private func worker(_ name: String, queued: Int = 0, used: Int = 0, blocks: Int = 100, cached: Int = 0) -> RoutingCandidate {
    RoutingCandidate(id: WorkerID(name), load: WorkerLoad(running: queued, usedBlocks: used, blockCount: blocks), cachedBlocks: cached)
}

private func choices(_ policy: inout some RoutingPolicy, _ candidates: [RoutingCandidate], count: Int) -> [String] {
    (0..<count).map { _ in policy.choose(RoutingRequest(promptBlocks: 4), among: candidates)!.name }
}

@Suite struct PrefixAwarePolicyTests {
    let policy = PrefixAwarePolicy()

    @Test func picksTheWorkerCachingThePrompt() {
        let candidates = [worker("d0"), worker("d1", cached: 6), worker("d2", cached: 3)]
        #expect(policy.choose(RoutingRequest(promptBlocks: 8), among: candidates) == WorkerID("d1"))
    }

    @Test func anOverloadedCachedWorkerLosesToAnIdleColdOne() {
        // d1 saves 6 blocks of prefill but owes 10 requests: 2 + 10 > 8 + 0.
        let candidates = [worker("d0"), worker("d1", queued: 10, cached: 6)]
        #expect(policy.choose(RoutingRequest(promptBlocks: 8), among: candidates) == WorkerID("d0"))
        // A lighter queue no longer outweighs the saving: 2 + 5 < 8.
        let lighter = [worker("d0"), worker("d1", queued: 5, cached: 6)]
        #expect(policy.choose(RoutingRequest(promptBlocks: 8), among: lighter) == WorkerID("d1"))
        // Weighting the prefix more keeps the request on the cache.
        let prefixHeavy = PrefixAwarePolicy(weight: 3)
        #expect(prefixHeavy.choose(RoutingRequest(promptBlocks: 8), among: candidates) == WorkerID("d1"))
    }

    @Test func equalCostsGoToTheLessLoadedThenTheLowerId() {
        // Both cost 5: d0 computes 5 blocks idle, d1 computes 3 with 2 queued.
        let byLoad = [worker("d1", queued: 2, cached: 2), worker("d0")]
        #expect(policy.choose(RoutingRequest(promptBlocks: 5), among: byLoad) == WorkerID("d0"))
        let byKV = [worker("d0", used: 50), worker("d1", used: 10)]
        #expect(policy.choose(RoutingRequest(promptBlocks: 5), among: byKV) == WorkerID("d1"))
        let byID = [worker("d2"), worker("d1"), worker("d3")]
        #expect(policy.choose(RoutingRequest(promptBlocks: 5), among: byID) == WorkerID("d1"))
    }

    @Test func skipsWorkersWhosePoolCannotHoldThePrompt() {
        // d1 is cheapest but has 3 free blocks for 4 uncached ones.
        let candidates = [worker("d0", queued: 3, used: 10), worker("d1", used: 97, cached: 4)]
        #expect(policy.choose(RoutingRequest(promptBlocks: 8), among: candidates) == WorkerID("d0"))
        // When no pool can hold it, the cheapest of all still gets it.
        let full = [worker("d0", queued: 3, used: 99), worker("d1", used: 97, cached: 4)]
        #expect(policy.choose(RoutingRequest(promptBlocks: 8), among: full) == WorkerID("d1"))
    }

    @Test func noCandidatesNoChoice() {
        var policies: [any RoutingPolicy] = RoutingPolicyName.allCases.map { $0.make(prefixWeight: 1) }
        for index in policies.indices {
            #expect(policies[index].choose(RoutingRequest(promptBlocks: 1), among: []) == nil)
        }
    }

    @Test func namesMakeTheirPolicies() {
        for name in RoutingPolicyName.allCases {
            #expect(name.make(prefixWeight: 2).name == name.rawValue)
        }
        let prefix = RoutingPolicyName.prefixAware.make(prefixWeight: 2.5) as? PrefixAwarePolicy
        #expect(prefix?.weight == 2.5)
    }
}

@Suite struct RoundRobinAndLeastLoadedTests {
    @Test func roundRobinCyclesInIdOrder() {
        var policy = RoundRobinPolicy()
        let candidates = [worker("d2"), worker("d0"), worker("d1")]
        #expect(choices(&policy, candidates, count: 7) == ["d0", "d1", "d2", "d0", "d1", "d2", "d0"])
    }

    @Test func roundRobinKeepsItsPlaceWhenTheSetChanges() {
        var policy = RoundRobinPolicy()
        #expect(choices(&policy, [worker("d0"), worker("d1"), worker("d2")], count: 2) == ["d0", "d1"])
        // d1 left and d3 joined: the rotation goes on after d1, not from the start.
        #expect(choices(&policy, [worker("d0"), worker("d2"), worker("d3")], count: 4) == ["d2", "d3", "d0", "d2"])
    }

    @Test func leastLoadedComparesQueuesThenKVUseThenId() {
        let policy = LeastLoadedPolicy()
        let request = RoutingRequest(promptBlocks: 4)
        #expect(policy.choose(request, among: [worker("d0", queued: 3), worker("d1", queued: 1, cached: 0), worker("d2", queued: 2, cached: 4)]) == WorkerID("d1"))
        #expect(policy.choose(request, among: [worker("d0", queued: 1, used: 60), worker("d1", queued: 1, used: 20)]) == WorkerID("d1"))
        #expect(policy.choose(request, among: [worker("d1", queued: 1), worker("d0", queued: 1)]) == WorkerID("d0"))
    }
}

@Suite struct DisaggregationDecisionTests {
    @Test func shortUncachedPromptsStayLocal() {
        #expect(DisaggregationDecision(uncachedPromptTokens: 31, threshold: 32, prefillWorkerAvailable: true) == .local)
        #expect(DisaggregationDecision(uncachedPromptTokens: 32, threshold: 32, prefillWorkerAvailable: true) == .remote)
        #expect(DisaggregationDecision(uncachedPromptTokens: 1, threshold: 0, prefillWorkerAvailable: true) == .remote)
        #expect(DisaggregationDecision(uncachedPromptTokens: 0, threshold: 0, prefillWorkerAvailable: true) == .local,
                "a fully cached prompt has nothing to ship")
    }

    @Test func withoutAPrefillWorkerEverythingIsLocal() {
        #expect(DisaggregationDecision(uncachedPromptTokens: 5000, threshold: 32, prefillWorkerAvailable: false) == .local)
    }
}
