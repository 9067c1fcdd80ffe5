import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomRouter
import LoomWire
import Testing

/// Routing and P/D pairing as the router decides them, from registrations
/// and heartbeats alone: no model, no network.
@Suite struct ClusterStateTests {
    let hasher = BlockHasher(modelName: "test")

    func state(threshold: Int = 32, timeout: Duration = .seconds(3)) -> ClusterState {
        ClusterState(settings: .init(disaggregationThreshold: threshold, heartbeatTimeout: timeout, hasher: hasher))
    }

    func register(
        _ state: ClusterState, _ name: String, role: WorkerRole, port: Int, epoch: UInt64 = 1, cached: [BlockHash] = [], diskOnly: [BlockHash] = []
    ) throws {
        var request = Loom_Cluster_RegisterRequest()
        request.name = name
        request.role = role.wire
        request.rpcHost = "127.0.0.1"
        request.rpcPort = UInt32(port)
        request.epoch = epoch
        request.blockCount = 1000
        request.blockSize = 16
        request.cachedHashes = cached.map(\.rawValue)
        request.diskOnlyHashes = diskOnly.map(\.rawValue)
        _ = try state.register(request)
    }

    let prompt: [TokenID] = (0..<100).map { TokenID($0) }

    @Test func aPromptGoesToTheDecodeWorkerHoldingItsPrefix() throws {
        let s = state()
        try register(s, "decode-0", role: .decode, port: 1)
        try register(s, "decode-1", role: .decode, port: 2, cached: Array(hasher.chain(prompt).prefix(4)))
        let route = try #require(s.route(prompt))
        #expect(route.decode.id == WorkerID("decode-1") && route.decode.address == .tcp(host: "127.0.0.1", port: 2))
        #expect(route.cachedTokens == 64)
        #expect(route.prefill == nil, "no prefill worker: the decode worker prefills")
    }

    @Test func aLongUncachedPromptIsPairedWithAPrefillWorkerAndAShortOneIsNot() throws {
        let s = state(threshold: 32)
        try register(s, "decode-0", role: .decode, port: 1)
        try register(s, "prefill-0", role: .prefill, port: 3)
        #expect(s.route(prompt)?.prefill?.id == WorkerID("prefill-0"))
        #expect(s.route(Array(prompt.prefix(20)))?.prefill == nil, "20 uncached tokens are under the threshold")
        let status = s.status
        #expect(status.decisions["remote"] == 1 && status.decisions["local"] == 1)
    }

    @Test func whatAStoreNodeHoldsIsFetchedNotShippedAndIsNeverRouted() throws {
        let s = state(threshold: 32)
        try register(s, "decode-0", role: .decode, port: 1)
        try register(s, "prefill-0", role: .prefill, port: 3)
        #expect(s.route(prompt)?.prefill != nil, "100 uncached tokens go to the prefill worker")
        // A store node holds the first five of the prompt's six full blocks:
        // the decode worker fetches them and computes 20 tokens itself.
        try register(s, "kvstore-0", role: .kvstore, port: 4, cached: Array(hasher.chain(prompt).prefix(5)))
        let route = try #require(s.route(prompt))
        #expect(route.decode.id == WorkerID("decode-0"), "a store node is never routed a request")
        #expect(route.storedTokens == 80 && route.cachedTokens == 0)
        #expect(route.prefill == nil, "20 tokens to compute are under the threshold")
        #expect(s.status.decisions["store_hit"] == 1)
        // Removed from the store, the blocks count for nothing again.
        var beat = Loom_Cluster_HeartbeatRequest()
        beat.name = "kvstore-0"
        beat.epoch = 1
        beat.events = hasher.chain(prompt).prefix(5).map { Loom_Cluster_CacheEvent(.removed(hash: $0)) }
        #expect(!s.heartbeat(beat).reregister)
        #expect(s.route(prompt)?.storedTokens == 0)
        #expect(s.route(prompt)?.prefill != nil)
    }

    @Test func theIndexKnowsWhichTierOfAStoreNodeHoldsEachBlock() throws {
        let s = state()
        let chain = hasher.chain(prompt)
        try register(s, "decode-0", role: .decode, port: 1)
        try register(s, "kvstore-0", role: .kvstore, port: 4, cached: Array(chain.prefix(5)), diskOnly: Array(chain.prefix(2)))
        func tiers() -> (all: Int?, disk: Int?) {
            let store = s.status.workers.first { $0.id == "kvstore-0" }
            return (store?.indexedBlocks, store?.indexedDiskBlocks)
        }
        #expect(tiers() == (5, 2), "registered: five blocks, two of them on disk only")
        var beat = Loom_Cluster_HeartbeatRequest()
        beat.name = "kvstore-0"
        beat.epoch = 1
        func event(_ change: KVCacheEvent, onDisk: Bool = false) -> Loom_Cluster_CacheEvent {
            var wire = Loom_Cluster_CacheEvent(change)
            wire.onDisk = onDisk
            return wire
        }
        beat.events = [
            event(.stored(hash: chain[4], parent: chain[3]), onDisk: true),  // DRAM let it go to disk
            event(.stored(hash: chain[0], parent: nil)),                     // read back into DRAM
            event(.removed(hash: chain[1])),                                 // gone from both
        ]
        #expect(!s.heartbeat(beat).reregister)
        #expect(tiers() == (4, 1), "block 4 on disk; 0 back in DRAM; 1 gone")
        #expect(s.route(prompt)?.storedTokens == 16, "a store block counts whatever its tier; the chain breaks at the missing block 1")
    }

    @Test func thePolicyPricesAFetchedBlockFarBelowAComputedOne() {
        let policy = PrefixAwarePolicy()
        let request = RoutingRequest(promptBlocks: 10, storedBlocks: 8)
        let cold = RoutingCandidate(id: WorkerID("a"), load: WorkerLoad(running: 0, waiting: 0, usedBlocks: 0, blockCount: 100), cachedBlocks: 0)
        let warm = RoutingCandidate(id: WorkerID("b"), load: WorkerLoad(running: 0, waiting: 0, usedBlocks: 0, blockCount: 100), cachedBlocks: 8)
        #expect(request.work(cached: 0) == (compute: 2, fetch: 8))
        #expect(request.work(cached: 9) == (compute: 1, fetch: 0))
        #expect(policy.cost(request, cold) == 2 + 0.05 * 8)
        #expect(policy.cost(request, warm) == 2, "holding the blocks itself saves only the fetch")
    }

    @Test func theBlockHoldingTheLastPromptTokenNeverCountsAsCached() throws {
        let s = state()
        let exact = Array(prompt.prefix(64))
        try register(s, "decode-0", role: .decode, port: 1, cached: hasher.chain(exact))
        #expect(s.route(exact)?.cachedTokens == 48, "its logits are needed, so the last block is computed again")
    }

    @Test func failedWorkersAreSkippedAndWithNoneLeftThereIsNoRoute() throws {
        let s = state()
        try register(s, "decode-0", role: .decode, port: 1)
        try register(s, "decode-1", role: .decode, port: 2)
        #expect(s.route(prompt, excluding: [WorkerID("decode-0")])?.decode.id == WorkerID("decode-1"))
        #expect(s.route(prompt, excluding: [WorkerID("decode-0"), WorkerID("decode-1")]) == nil)
    }

    @Test func requestsInFlightSpreadABurstBeforeAnyHeartbeatReportsIt() throws {
        let s = state()
        try register(s, "decode-0", role: .decode, port: 1)
        try register(s, "decode-1", role: .decode, port: 2)
        var chosen: [String] = []
        for _ in 0..<4 {
            let route = try #require(s.route(prompt))
            s.started(on: route.decode.id)
            chosen.append(route.decode.id.name)
        }
        #expect(chosen.sorted() == ["decode-0", "decode-0", "decode-1", "decode-1"])
    }

    @Test func heartbeatsFeedTheIndexAndAnUnknownIncarnationMustRegisterAgain() throws {
        let s = state()
        try register(s, "decode-0", role: .decode, port: 1, epoch: 7)
        var beat = Loom_Cluster_HeartbeatRequest()
        beat.name = "decode-0"
        beat.epoch = 7
        let chain = hasher.chain(prompt)
        beat.events = chain.enumerated().map { i, hash in Loom_Cluster_CacheEvent(.stored(hash: hash, parent: i == 0 ? nil : chain[i - 1])) }
        #expect(s.heartbeat(beat).reregister == false)
        #expect(s.status.workers.first?.indexedBlocks == 6)
        #expect(s.route(prompt)?.cachedTokens == 96)
        beat.epoch = 8
        #expect(s.heartbeat(beat).reregister == true, "a restarted worker's heartbeat is not accepted")
    }

    @Test func silentWorkersAreDeclaredDeadAndLoseTheirIndex() async throws {
        let s = state(timeout: .milliseconds(1))
        try register(s, "decode-0", role: .decode, port: 1, cached: hasher.chain(prompt))
        try await Task.sleep(for: .milliseconds(5))
        let dead = s.expire()
        #expect(dead.map(\.0) == [WorkerID("decode-0")] && dead.first?.1 == .tcp(host: "127.0.0.1", port: 1))
        #expect(s.route(prompt) == nil)
        #expect(s.status.prefixIndexBlocks == 0 && s.status.workers.first?.healthy == false)
    }
}
