import LoomCluster
import LoomEngine
import LoomProtocol

/// What `loomctl cache` shows: per tier (worker pools, store DRAM, store
/// disk) what it holds and how often a lookup found a block there. A
/// lookup is a worker looking up a prompt's full blocks before running
/// it; each block counts once, as a hit of the first tier that had it or
/// as a miss, so the tiers' hits and the misses add up to the lookups.
public struct CacheReport: Codable, Sendable, Equatable {
    public struct Tier: Codable, Sendable, Equatable {
        public var tier: String
        public var blocks: Int
        public var bytes: Int
        public var hits: Int
        /// Hits over all blocks looked up.
        public var hitRate: Double
        public var evictions: Int
    }

    public struct StoreNode: Codable, Sendable, Equatable {
        public var name: String
        public var address: String
        public var pid: Int
        public var healthy: Bool
        public var dramBlocks: Int
        public var dramSlots: Int
        public var diskBlocks: Int
        public var diskDir: String
        /// Why the disk tier takes no blocks, when it does not.
        public var diskProblem: String
        public var diskCorrupt: Int
        public var pinnedBlocks: Int
    }

    public struct Pin: Codable, Sendable, Equatable {
        public var label: String
        public var blocks: Int
        /// Blocks the store nodes pinned (a chain's blocks are spread over them).
        public var pinned: Int
        public var expiresInSeconds: Int
    }

    public var lookups: Int
    public var hits: Int
    public var misses: Int
    public var hitRate: Double
    public var tiers: [Tier]
    public var stores: [StoreNode]
    public var pins: [Pin]
}

/// A prefix an operator pinned, as the router remembers it for reports.
struct PinRecord: Sendable {
    /// The prefix's last block, which names the whole prefix.
    var key: BlockHash
    var label: String
    var blocks: Int
    var pinned: Int
    var deadline: ContinuousClock.Instant
}

extension ClusterState {
    public var cacheReport: CacheReport {
        state.withLock { state in
            let now = ContinuousClock.now
            state.pins.removeAll { $0.deadline <= now }
            let members = state.membership.workers
            let loads = members.map { state.reported[$0.id] ?? Loom_Cluster_Load() }
            let workers = zip(members, loads).filter { $0.0.role != .kvstore }.map(\.1)
            let stores = zip(members, loads).filter { $0.0.role == .kvstore }
            let storeStats = stores.map(\.1.store)
            func sum<Item>(_ items: [Item], _ value: (Item) -> UInt64) -> Int { Int(clamping: items.reduce(0) { $0 + value($1) }) }
            let lookups = sum(workers) { $0.lookupBlocks }
            func rate(_ hits: Int) -> Double { lookups > 0 ? Double(hits) / Double(lookups) : 0 }
            func tier(_ name: String, blocks: Int, bytes: Int, hits: Int, evictions: Int) -> CacheReport.Tier {
                .init(tier: name, blocks: blocks, bytes: bytes, hits: hits, hitRate: rate(hits), evictions: evictions)
            }
            let tiers = [
                tier("worker pools", blocks: sum(workers) { UInt64($0.cachedBlocks) }, bytes: sum(workers) { UInt64($0.cachedBlocks) * $0.blockBytes },
                     hits: sum(workers) { $0.poolHitBlocks }, evictions: sum(workers) { $0.poolEvictions }),
                tier("store dram", blocks: sum(storeStats) { UInt64($0.committed) }, bytes: sum(storeStats) { $0.bytes },
                     hits: sum(workers) { $0.storeDramHitBlocks }, evictions: sum(storeStats) { $0.evictions }),
                tier("store disk", blocks: sum(storeStats) { UInt64($0.diskBlocks) }, bytes: sum(storeStats) { $0.diskBytes },
                     hits: sum(workers) { $0.storeDiskHitBlocks }, evictions: sum(storeStats) { $0.diskEvictions }),
            ]
            let hits = tiers.reduce(0) { $0 + $1.hits }
            return CacheReport(
                lookups: lookups, hits: hits, misses: max(0, lookups - hits), hitRate: rate(hits),
                tiers: tiers,
                stores: stores.map { member, load in
                    CacheReport.StoreNode(
                        name: member.id.name, address: member.rpcAddress.hostPort, pid: member.pid, healthy: member.alive,
                        dramBlocks: Int(load.store.committed), dramSlots: Int(load.store.slots), diskBlocks: Int(load.store.diskBlocks),
                        diskDir: load.store.diskDir, diskProblem: load.store.diskProblem, diskCorrupt: Int(clamping: load.store.diskCorrupt),
                        pinnedBlocks: Int(load.store.pinnedBlocks))
                },
                pins: state.pins.map {
                    CacheReport.Pin(label: $0.label, blocks: $0.blocks, pinned: $0.pinned, expiresInSeconds: Int(($0.deadline - now).components.seconds))
                })
        }
    }

    /// The cache's counters in Prometheus' text format, for `/metrics`:
    /// hits and misses, bytes and evictions per tier, and how long the
    /// workers' fetches from the store took.
    public var cacheMetricsText: String {
        let report = cacheReport
        var lines = [
            "# HELP loom_kv_cache_lookup_blocks_total Prompt blocks workers looked up before running them",
            "# TYPE loom_kv_cache_lookup_blocks_total counter",
            "loom_kv_cache_lookup_blocks_total \(report.lookups)",
            "# HELP loom_kv_cache_hit_blocks_total Looked-up blocks found, by the tier they were found in",
            "# TYPE loom_kv_cache_hit_blocks_total counter",
        ]
        lines += report.tiers.map { "loom_kv_cache_hit_blocks_total{tier=\"\(Self.label($0.tier))\"} \($0.hits)" }
        lines += ["# HELP loom_kv_cache_miss_blocks_total Looked-up blocks no tier held (computed)",
                  "# TYPE loom_kv_cache_miss_blocks_total counter", "loom_kv_cache_miss_blocks_total \(report.misses)",
                  "# HELP loom_kv_cache_bytes KV bytes each tier holds", "# TYPE loom_kv_cache_bytes gauge"]
        lines += report.tiers.map { "loom_kv_cache_bytes{tier=\"\(Self.label($0.tier))\"} \($0.bytes)" }
        lines += ["# HELP loom_kv_cache_evictions_total Blocks each tier dropped to make room", "# TYPE loom_kv_cache_evictions_total counter"]
        lines += report.tiers.map { "loom_kv_cache_evictions_total{tier=\"\(Self.label($0.tier))\"} \($0.evictions)" }
        lines += fetchHistogramLines()
        return lines.joined(separator: "\n") + "\n"
    }

    private static func label(_ tier: String) -> String {
        tier.replacingOccurrences(of: " ", with: "_")
    }

    private func fetchHistogramLines() -> [String] {
        let (buckets, sum): ([UInt64], Double) = state.withLock { state in
            var buckets: [UInt64] = [], sum = 0.0
            for load in state.reported.values where !load.fetchLatencyBuckets.isEmpty {
                if buckets.isEmpty { buckets = Array(repeating: 0, count: load.fetchLatencyBuckets.count) }
                guard load.fetchLatencyBuckets.count == buckets.count else { continue }
                for i in buckets.indices { buckets[i] += load.fetchLatencyBuckets[i] }
                sum += load.fetchLatencySumMs
            }
            return (buckets, sum)
        }
        var lines = ["# HELP loom_kv_store_fetch_seconds Time a worker's fetch of blocks from a store node took",
                     "# TYPE loom_kv_store_fetch_seconds histogram"]
        let bounds = FetchLatencyBounds.milliseconds
        guard buckets.count == bounds.count + 1 else { return lines + ["loom_kv_store_fetch_seconds_count 0", "loom_kv_store_fetch_seconds_sum 0"] }
        for (bound, count) in zip(bounds, buckets) { lines.append("loom_kv_store_fetch_seconds_bucket{le=\"\(bound / 1000)\"} \(count)") }
        lines.append("loom_kv_store_fetch_seconds_bucket{le=\"+Inf\"} \(buckets[bounds.count])")
        lines.append("loom_kv_store_fetch_seconds_sum \(sum / 1000)")
        lines.append("loom_kv_store_fetch_seconds_count \(buckets[bounds.count])")
        return lines
    }
}
