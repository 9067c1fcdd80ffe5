import Logging
import LoomEngine
import LoomKVStore
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import Synchronization

/// Before a prompt runs, fetches the leading blocks this worker's pool
/// lacks from the store nodes that hold them: the store pushes them into
/// staging pages registered for it, and the engine caches them as if
/// computed here, so the request computes only the rest. A replica that
/// fails or misses is followed by the next; a fetch that fails on all of
/// them or outlasts its budget changes nothing: the prompt is computed.
final class StoreFetcher: Sendable {
    let routing: StoreRouting
    let engine: InferenceEngine
    let hasher: BlockHasher
    /// Pages the store pushes into, one block each.
    let staging: RegisteredRegion
    let leases: LockedWriteLeases<PoolWriter>
    let counters: ImmediateCounters
    let peers: TransferPeers
    let configuration: RPCConfiguration
    let fetched = Atomic<UInt64>(0)
    let failed = Atomic<UInt64>(0)
    let latency = FetchLatency()
    private let logger = Logger(label: "loom.worker.fetch")
    private let free: Mutex<[Int]>
    private let immediates: ScratchImmediates
    private let host: String
    private let port: BoundPort

    init(routing: StoreRouting, engine: InferenceEngine, hasher: BlockHasher, staging: RegisteredRegion, leases: LockedWriteLeases<PoolWriter>,
         counters: ImmediateCounters, immediates: ScratchImmediates, peers: TransferPeers, configuration: RPCConfiguration, host: String, port: BoundPort) {
        self.immediates = immediates
        self.routing = routing
        self.engine = engine
        self.hasher = hasher
        self.staging = staging
        self.leases = leases
        self.counters = counters
        self.peers = peers
        self.configuration = configuration
        self.host = host
        self.port = port
        pageCount = staging.count / engine.kvLayout.bytesPerBlock
        free = Mutex(Array(0..<pageCount))
    }

    /// Staging pages in all: the most one fetch brings.
    let pageCount: Int

    /// Blocks a warm-up brought, by the store tier they came from.
    struct Fetched: Equatable {
        var fromDRAM = 0
        var fromDisk = 0
    }

    /// Caches what the stores hold of `prompt` beyond the `pooled` leading
    /// blocks the pool holds, run by run of blocks that share a holder,
    /// until no holder has one.
    func warm(_ prompt: [TokenID], in namespace: CacheNamespace?, pooled: Int) async -> Fetched {
        let chain = hasher.chain(prompt, in: namespace)
        var next = pooled, fetched = Fetched()
        while next < chain.count {
            var landed = Fetched()
            for node in routing.readOrder(for: chain[next]) {
                // A run this node holds, at most what staging holds at once.
                let run = min(chain[next...].prefix { routing.holders(of: $0).contains(node) }.count, pageCount)
                guard let got = await fetch(chain, prompt: prompt, namespace: namespace, from: next, count: run, node: node) else { continue }
                landed = got
                // A miss on one replica (restarted, or full) may be a hit on the next.
                if got.total > 0 { break }
            }
            next += landed.total
            fetched.fromDRAM += landed.fromDRAM
            fetched.fromDisk += landed.fromDisk
            // Short of the run (a small store DRAM tier lends fewer slots
            // than a long run from disk needs): ask again from there.
            guard landed.total > 0 else { break }
        }
        return fetched
    }

    /// Fetches up to `count` blocks from `first` on from store node
    /// `index`; returns how many the pool holds now, nil when the node
    /// failed.
    private func fetch(
        _ chain: [BlockHash], prompt: [TokenID], namespace: CacheNamespace?, from first: Int, count: Int, node index: Int
    ) async -> Fetched? {
        let node = routing.nodes[index]
        let started = ContinuousClock.now
        // Priced against recomputing: a block costs a few ms to compute here.
        let budget = Duration.milliseconds(50 + 5 * count)
        let pages = await take(count, until: started + budget / 2)
        guard !pages.isEmpty else { return Fetched() }
        defer { latency.record(.now - started) }
        let size = engine.kvLayout.bytesPerBlock
        let immediate = immediates.take()
        leases.open(immediate, .init(holder: .fetch, pages: pages, of: staging.descriptor, pageBytes: size, deadline: .now + budget * 2))
        defer {
            // Closed before the pages are reused: a late push is refused.
            _ = leases.close(immediate)
            counters.reset(immediate)
            give(pages)
        }
        do {
            let got = try await RPCConnection.withConnection(to: node.address, configuration: configuration) { connection in
                try await StoreClient(connection: connection, peers: peers, writer: configuration.nodeName)
                    .fetch(chain[first..<first + pages.count].map(\.rawValue), into: target(pages, immediate: immediate), timeout: budget)
            }
            routing.answered(index)
            let landed = Int(got.blocks)
            guard landed > 0 else { return Fetched() }
            let blocks = (first..<first + landed).map { i in
                PublishedBlock(hash: chain[i], parent: BlockHasher.parent(of: i, in: chain, namespace: namespace), tokens: Array(prompt[i * hasher.blockSize..<(i + 1) * hasher.blockSize]))
            }
            let imported = await engine.importBlocks(blocks) { [staging] index, destination in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: staging.bytes[pages[index] * size..<(pages[index] + 1) * size]))
            }
            fetched.add(UInt64(imported), ordering: .relaxed)
            // Blocks from disk come after those from DRAM only by chance;
            // what counts is how many of each the pool kept.
            let fromDisk = min(Int(got.fromDisk), imported)
            return Fetched(fromDRAM: imported - fromDisk, fromDisk: fromDisk)
        } catch {
            failed.add(1, ordering: .relaxed)
            routing.failed(index)
            logger.debug("fetching \(pages.count) blocks from store node \(node.name) failed: \(error)")
            return nil
        }
    }

    private func target(_ pages: [Int], immediate: UInt32) throws -> Loom_Kvstore_GetTarget {
        try Loom_Kvstore_GetTarget(staging, blocks: pages, bytesPerBlock: engine.kvLayout.bytesPerBlock, immediate: immediate,
                                   transferAt: .tcp(host: host, port: port.value))
    }

    /// Up to `count` free staging pages. When other fetches hold most of
    /// them (several requests arriving together), waits for a useful number
    /// to come back until `deadline`: a fetch holds its pages for
    /// milliseconds, while giving up means computing every block of the
    /// run, and a run fetched a page at a time pays a round trip per block.
    private func take(_ count: Int, until deadline: ContinuousClock.Instant) async -> [Int] {
        let enough = min(count, Self.usefulPages)
        while true {
            let late = ContinuousClock.now >= deadline || Task.isCancelled
            let pages = free.withLock { free in
                guard free.count >= enough || late else { return [Int]() }
                let pages = Array(free.suffix(count))
                free.removeLast(pages.count)
                return pages
            }
            if !pages.isEmpty || late { return pages }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Fewer free pages than this (or than the run) are waited on.
    static let usefulPages = 8

    private func give(_ pages: [Int]) {
        free.withLock { $0.append(contentsOf: pages) }
    }
}

extension StoreFetcher.Fetched {
    var total: Int { fromDRAM + fromDisk }
}

/// How long fetches from the store took: a cumulative histogram the
/// worker reports in its heartbeat and the router exports.
final class FetchLatency: Sendable {
    static let boundsMs = FetchLatencyBounds.milliseconds
    private let state = Mutex<(buckets: [UInt64], sumMs: Double)>((Array(repeating: 0, count: boundsMs.count + 1), 0))

    func record(_ duration: Duration) {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        state.withLock { state in
            for (i, bound) in Self.boundsMs.enumerated() where ms <= bound { state.buckets[i] += 1 }
            state.buckets[Self.boundsMs.count] += 1
            state.sumMs += ms
        }
    }

    var snapshot: (buckets: [UInt64], sumMs: Double) { state.withLock { $0 } }
}
