import Logging
import LoomEngine
import LoomKVStore
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

/// Publishes every block the engine caches to the KV store, in the
/// background. The engine thread only copies the block into a bounded
/// queue (or drops it when the queue is full, counted): a slow or absent
/// store never delays a step. A background task checksums, places each
/// block on its replicas' nodes, and puts batches; a block the
/// store holds already is not sent again (the store says so at reserve),
/// and one this worker sent lately is not even offered.
public final class StorePublisher: KVPublishSink {
    struct Pending {
        var block: PublishedBlock
        var bytes: ByteBuffer
        /// Puts that found no room for it so far.
        var attempts = 0
    }

    /// Puts a block that finds no room is offered in, a little apart: a
    /// store whose DRAM reads hold leased has room again moments later.
    static let attempts = 4
    static let retryPause = Duration.milliseconds(50)

    public let routing: StoreRouting
    let modelID: UInt64
    let layout: StoredLayout
    /// Most bytes waiting to be sent before new blocks are dropped.
    let queueLimit: Int
    private let queue = Mutex<(blocks: [Pending], bytes: Int)>(([], 0))
    private let recent = Mutex(DuplicateFilter<UInt64>(window: 1 << 16))
    private let wake = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    let published = Atomic<UInt64>(0)
    let dropped = Atomic<UInt64>(0)
    let failed = Atomic<UInt64>(0)

    public init(routing: StoreRouting, modelID: UInt64, layout: StoredLayout, queueLimit: Int = 64 << 20) {
        self.routing = routing
        self.modelID = modelID
        self.layout = layout
        self.queueLimit = queueLimit
    }

    /// On the engine thread: one copy into the queue, nothing else.
    public func publish(_ block: PublishedBlock, bytes: UnsafeRawBufferPointer) {
        guard recent.withLock({ !$0.contains(block.hash.rawValue) }) else { return }
        let admitted = queue.withLock { queue in
            guard queue.bytes + bytes.count <= queueLimit else { return false }
            queue.blocks.append(Pending(block: block, bytes: ByteBuffer(bytes: bytes)))
            queue.bytes += bytes.count
            return true
        }
        guard admitted else {
            dropped.add(1, ordering: .relaxed)
            return
        }
        wake.continuation.yield()
    }

    /// Sends what the engine queued until cancelled, batch by batch.
    public func run(peers: TransferPeers, configuration: RPCConfiguration, logger: Logger) async {
        var wakes = wake.stream.makeAsyncIterator()
        while !Task.isCancelled {
            let batch = take(32)
            guard !batch.isEmpty else {
                _ = await wakes.next()
                continue
            }
            var perNode: [Int: [Pending]] = [:]
            for pending in batch {
                for node in routing.holders(of: pending.block.hash) { perNode[node, default: []].append(pending) }
            }
            var retrying = false
            for (node, blocks) in perNode.sorted(by: { $0.key < $1.key }) {
                retrying = await send(blocks, to: node, peers: peers, configuration: configuration, logger: logger) || retrying
            }
            if retrying { try? await Task.sleep(for: Self.retryPause) }
        }
    }

    /// Queues again blocks a store had no room for, unless tried enough.
    private func retry(_ blocks: [Pending]) -> Bool {
        let again = blocks.filter { $0.attempts + 1 < Self.attempts }.map { pending in
            var pending = pending
            pending.attempts += 1
            return pending
        }
        dropped.add(UInt64(blocks.count - again.count), ordering: .relaxed)
        queue.withLock { queue in
            queue.blocks += again
            queue.bytes += again.reduce(0) { $0 + $1.bytes.readableBytes }
        }
        return !again.isEmpty
    }

    private func take(_ count: Int) -> [Pending] {
        queue.withLock { queue in
            let batch = Array(queue.blocks.prefix(count))
            queue.blocks.removeFirst(batch.count)
            queue.bytes -= batch.reduce(0) { $0 + $1.bytes.readableBytes }
            return batch
        }
    }

    /// Puts `blocks` on node `index`; true when some found no room there
    /// and were queued again.
    private func send(_ blocks: [Pending], to index: Int, peers: TransferPeers, configuration: RPCConfiguration, logger: Logger) async -> Bool {
        let node = routing.nodes[index]
        // A node that failed lately is given time before the next try; its
        // replicas have the blocks meanwhile.
        guard !routing.isFailing(index) else {
            failed.add(UInt64(blocks.count), ordering: .relaxed)
            return false
        }
        let headers = blocks.map { pending in
            pending.bytes.withUnsafeReadableBytes {
                StoredBlockHeader(hash: pending.block.hash, parent: pending.block.parent, modelID: modelID, layout: layout,
                                  tokens: pending.block.tokens, payload: $0)
            }
        }
        do {
            let outcome = try await RPCConnection.withConnection(to: node.address, configuration: configuration) { connection in
                try await StoreClient(connection: connection, peers: peers, writer: configuration.nodeName).put(headers, blocks: blocks.map(\.bytes))
            }
            routing.answered(index)
            published.add(UInt64(outcome.stored), ordering: .relaxed)
            let noRoom = Set(outcome.noRoom)
            recent.withLock { recent in
                for (i, header) in headers.enumerated() where !noRoom.contains(i) { _ = recent.insert(header.hash.rawValue) }
            }
            if !outcome.refused.isEmpty {
                logger.warning("store node \(node.name) refused \(outcome.refused.count) blocks: \(outcome.refused.prefix(3).joined(separator: "; "))")
            }
            return retry(outcome.noRoom.map { blocks[$0] })
        } catch {
            // The blocks stay in the worker's pool; a later request that
            // needs them computes them if the store never got them.
            routing.failed(index)
            failed.add(UInt64(blocks.count), ordering: .relaxed)
            logger.debug("publishing \(blocks.count) blocks to store node \(node.name) failed: \(error)")
            return false
        }
    }
}
