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
    private let logger = Logger(label: "loom.worker.fetch")
    private let free: Mutex<[Int]>
    private let immediates = Atomic<UInt32>(0)
    private let host: String
    private let port: BoundPort

    init(routing: StoreRouting, engine: InferenceEngine, hasher: BlockHasher, staging: RegisteredRegion, leases: LockedWriteLeases<PoolWriter>,
         counters: ImmediateCounters, peers: TransferPeers, configuration: RPCConfiguration, host: String, port: BoundPort) {
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

    /// Caches what the stores hold of `prompt` beyond what the pool holds,
    /// run by run of blocks that share a holder, until no holder has one.
    func warm(_ prompt: [TokenID]) async {
        let chain = hasher.chain(prompt)
        var next = await engine.cachedPrefixBlocks(of: prompt)
        while next < chain.count {
            var landed = 0, run = 0
            for node in routing.readOrder(for: chain[next]) {
                // A run this node holds, at most what staging holds at once.
                run = min(chain[next...].prefix { routing.holders(of: $0).contains(node) }.count, pageCount)
                guard let got = await fetch(chain, prompt: prompt, from: next, count: run, node: node) else { continue }
                landed = got
                // A miss on one replica (restarted, or full) may be a hit on the next.
                if got > 0 { break }
            }
            next += landed
            guard landed > 0, landed == run else { return }
        }
    }

    /// Fetches up to `count` blocks from `first` on from store node
    /// `index`; returns how many the pool holds now, nil when the node
    /// failed.
    private func fetch(_ chain: [BlockHash], prompt: [TokenID], from first: Int, count: Int, node index: Int) async -> Int? {
        let node = routing.nodes[index]
        let pages = take(count)
        guard !pages.isEmpty else { return 0 }
        let size = engine.kvLayout.bytesPerBlock
        let immediate = 0x8000_0000 | (immediates.wrappingAdd(1, ordering: .relaxed).oldValue & 0x7FFF_FFFF)
        // Priced against recomputing: a block costs a few ms to compute here.
        let budget = Duration.milliseconds(50 + 5 * pages.count)
        leases.open(immediate, .init(holder: .fetch, pages: pages, of: staging.descriptor, pageBytes: size, deadline: .now + budget * 2))
        defer {
            // Closed before the pages are reused: a late push is refused.
            _ = leases.close(immediate)
            counters.reset(immediate)
            give(pages)
        }
        do {
            let landed = try await RPCConnection.withConnection(to: node.address, configuration: configuration) { connection in
                try await StoreClient(connection: connection, peers: peers, writer: configuration.nodeName)
                    .get(chain[first..<first + pages.count].map(\.rawValue), into: target(pages, immediate: immediate), timeout: budget)
            }
            routing.answered(index)
            guard landed > 0 else { return 0 }
            let blocks = (first..<first + landed).map { i in
                PublishedBlock(hash: chain[i], parent: i == 0 ? nil : chain[i - 1], tokens: Array(prompt[i * hasher.blockSize..<(i + 1) * hasher.blockSize]))
            }
            let imported = await engine.importBlocks(blocks) { [staging] index, destination in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: staging.bytes[pages[index] * size..<(pages[index] + 1) * size]))
            }
            fetched.add(UInt64(imported), ordering: .relaxed)
            return imported
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

    private func take(_ count: Int) -> [Int] {
        free.withLock { free in
            let pages = Array(free.suffix(count))
            free.removeLast(pages.count)
            return pages
        }
    }

    private func give(_ pages: [Int]) {
        free.withLock { $0.append(contentsOf: pages) }
    }
}
