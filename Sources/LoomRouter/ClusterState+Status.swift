import Foundation
import LoomCluster
import LoomEngine
import LoomProtocol
import LoomWire

/// What `loomctl status` shows: one row per worker and the index's figures.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public struct Worker: Codable, Sendable, Equatable {
        public var id: String
        public var role: String
        public var address: String
        public var pid: Int
        public var healthy: Bool
        /// Shutting down: finishing what it runs, taking nothing new.
        public var draining: Bool
        public var running: Int
        public var waiting: Int
        public var kvBlocksUsed: Int
        public var kvBlocksTotal: Int
        public var kvBlocksSent: Int
        public var kvBlocksReceived: Int
        public var heartbeatAgeMs: Int
        public var computedTokens: Int
        public var remotePrefilledTokens: Int
        /// Blocks the worker says its cache holds, and the blocks the
        /// router's index holds for it: equal once events are applied.
        public var cachedBlocks: Int
        public var indexedBlocks: Int
        /// For a store node: of its indexed blocks, those on its disk only.
        public var indexedDiskBlocks: Int
        /// KV writes this worker sent, by transfer backend.
        public var shmWrites: Int
        public var tcpWrites: Int
        public var fabricWrites: Int
        /// Blocks published to the KV store, dropped on the way (a full
        /// queue, a failed store), and fetched from it instead of computed.
        public var kvBlocksPublished: Int
        public var kvBlocksPublishDropped: Int
        public var kvBlocksFetched: Int
        /// A tensor-parallel worker's ranks (rank 0 is the row itself);
        /// empty for a worker of one process. The group is healthy as one.
        public var ranks: [Rank]
    }

    public struct Rank: Codable, Sendable, Equatable {
        public var rank: Int
        public var pid: Int
        public var host: String
        /// Where a rank above 0 takes its peers' tcp connections, and how
        /// rank 0 reaches it ("shm" or "tcp"); empty for rank 0.
        public var address: String
        public var link: String
    }

    public var workers: [Worker]
    public var prefixIndexBlocks: Int
    public var prefixIndexEntries: Int
    public var prefixHitRate: Double
    public var policy: String
    public var decisions: [String: Int]
}

extension ClusterState {
    public var status: ClusterStatus {
        state.withLock { state in
            let now = ContinuousClock.now
            let workers = state.membership.workers.map { w in
                let reported = state.reported[w.id]
                return ClusterStatus.Worker(
                    id: w.id.name, role: w.role.rawValue, address: w.rpcAddress.hostPort, pid: w.pid, healthy: w.alive, draining: w.draining,
                    running: w.load.running, waiting: w.load.waiting, kvBlocksUsed: w.load.usedBlocks, kvBlocksTotal: w.load.blockCount,
                    kvBlocksSent: w.kvBlocksSent, kvBlocksReceived: w.kvBlocksReceived,
                    heartbeatAgeMs: w.heartbeatAge(at: now).wholeMilliseconds,
                    computedTokens: Int(clamping: reported?.computedTokens ?? 0), remotePrefilledTokens: Int(clamping: reported?.remotePrefilledTokens ?? 0),
                    cachedBlocks: Int(clamping: reported?.cachedBlocks ?? 0), indexedBlocks: state.index.hashes(of: w.id).count,
                    indexedDiskBlocks: state.storeDisk[w.id]?.count ?? 0,
                    shmWrites: Int(clamping: reported?.shmWrites ?? 0), tcpWrites: Int(clamping: reported?.tcpWrites ?? 0),
                    fabricWrites: Int(clamping: reported?.fabricWrites ?? 0),
                    kvBlocksPublished: Int(clamping: reported?.kvBlocksPublished ?? 0),
                    kvBlocksPublishDropped: Int(clamping: reported?.kvBlocksPublishDropped ?? 0),
                    kvBlocksFetched: Int(clamping: reported?.kvBlocksFetched ?? 0),
                    ranks: (state.ranks[w.id] ?? []).map { ClusterStatus.Rank(rank: Int($0.rank), pid: Int($0.pid), host: $0.host, address: $0.address, link: $0.link) })
            }
            return ClusterStatus(
                workers: workers, prefixIndexBlocks: state.index.distinctBlocks, prefixIndexEntries: state.index.entryCount,
                prefixHitRate: state.index.hitRate, policy: state.decodePolicy.name, decisions: state.decisions)
        }
    }

    /// The cluster's load summed over live workers, for the router's gauges.
    public var aggregateSnapshot: EngineSnapshot {
        state.withLock { state in
            var total = EngineSnapshot()
            for worker in state.membership.workers where worker.alive {
                let load = state.reported[worker.id]
                total.running += Int(load?.running ?? 0)
                total.waiting += Int(load?.waiting ?? 0)
                total.reserved += Int(load?.reserved ?? 0)
                total.usedBlocks += worker.load.usedBlocks
                total.blockCount += worker.load.blockCount
            }
            return total
        }
    }
}
