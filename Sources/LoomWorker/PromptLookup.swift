import LoomEngine
import LoomModel
import LoomProtocol
import Synchronization

/// Looks a prompt up before it runs: how many of its full blocks the pool
/// holds, then what the store nodes add (fetched into the pool). Each
/// block is counted once, as a hit of the tier it was found in at that
/// moment or as a miss, so the tiers' hits and the misses add up to the
/// blocks looked up, however the caches change afterwards.
final class PromptLookup: Sendable {
    let engine: InferenceEngine
    let fetcher: StoreFetcher?
    let blockSize: Int
    private let counts = Mutex(Counts())

    struct Counts {
        var blocks: UInt64 = 0
        var pool: UInt64 = 0
        var dram: UInt64 = 0
        var disk: UInt64 = 0
    }

    init(engine: InferenceEngine, fetcher: StoreFetcher?, blockSize: Int) {
        self.engine = engine
        self.fetcher = fetcher
        self.blockSize = blockSize
    }

    func prepare(_ request: GenerationRequest) async {
        let prompt = request.prompt, namespace = request.cacheNamespace
        let blocks = prompt.count / blockSize
        guard blocks > 0 else { return }
        let pooled = await engine.cachedPrefixBlocks(of: prompt, in: namespace)
        let fetched = await fetcher?.warm(prompt, in: namespace, pooled: pooled) ?? StoreFetcher.Fetched()
        counts.withLock { counts in
            counts.blocks += UInt64(blocks)
            counts.pool += UInt64(pooled)
            counts.dram += UInt64(fetched.fromDRAM)
            counts.disk += UInt64(fetched.fromDisk)
        }
    }

    func report(into load: inout Loom_Cluster_Load) {
        let counts = counts.withLock { $0 }
        load.lookupBlocks = counts.blocks
        load.poolHitBlocks = counts.pool
        load.storeDramHitBlocks = counts.dram
        load.storeDiskHitBlocks = counts.disk
        if let fetcher {
            let latency = fetcher.latency.snapshot
            load.fetchLatencyBuckets = latency.buckets
            load.fetchLatencySumMs = latency.sumMs
        }
    }
}
