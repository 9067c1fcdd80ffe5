import LoomEngine
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

/// The prefill half of disaggregated serving.
struct PrefillService: Sendable {
    let engine: InferenceEngine
    let json: JSONTokenTable
    let peers: TransferPeers
    let calls: WorkerCalls
    /// Brings what the store holds of a prompt into the pool first.
    let lookup: PromptLookup
    /// This worker's heads among its group's (all of them, alone).
    let group: GroupKV
    let geometry: KVGeometry
    let fences: PrefillFences

    func serve(into services: inout RPCServices) {
        services.unary(ClusterRPC.prefill) { request, _ in
            (try await calls.serving(new: true) { try await prefill(request) }, ByteBuffer())
        }
    }

    /// Computes the prompt (reusing this worker's own prefix cache), writes
    /// the blocks the decode worker lacks straight into its reserved blocks
    /// with one-sided writes carrying the reservation's immediate — each
    /// chunk's blocks as soon as the chunk is computed, while the engine
    /// computes the next — and returns the first sampled token. The decode
    /// worker samples the rest.
    ///
    /// When either worker is a tensor-parallel group, each rank writes its
    /// own heads (`HeadWriter`); this rank's step plans tell the others
    /// which blocks, and where, and it answers only once they are done.
    func prefill(_ wire: Loom_Cluster_PrefillRequest) async throws -> Loom_Cluster_PrefillResponse {
        let received = ContinuousClock.now
        let writes: ChunkWrites = wire.target.ranks.isEmpty && !group.isGroup
            ? .whole(try PrefillTarget(wire.target, bytesPerBlock: engine.kvLayout.bytesPerBlock))
            : .heads(try HeadWriter(wire.target, from: group, geometry: geometry))
        let (chunks, sink) = KVChunkStream.make(bytesPerBlock: engine.kvLayout.bytesPerBlock)
        var request = wire.spec.request(json: json)
        request.maxTokens = 1
        let fence = try openFence(wire.target, writes, received: received)
        request.exportKV = KVExport(fromBlock: writes.target.firstBlock, sink: sink, forRanks: fence?.forRanks)
        await lookup.prepare(request)
        async let written = write(chunks, with: writes, startedAt: received)
        let outcome: Result<Loom_Cluster_PrefillResponse, any Error>
        do { outcome = .success(try await firstToken(of: request)) } catch { outcome = .failure(error) }
        sink.finish()
        let transfer: Result<TransferTotals, any Error>
        do { transfer = .success(try await written) } catch { transfer = .failure(error) }
        let settled = await fence?.settle(chunks: sink.exported, with: fences)
        var response = try outcome.get()
        let totals = try transfer.get()
        try settled?.get()
        guard response.hasFirst else { return response }
        response.writes = UInt32(totals.writes * writes.countedPerChunk)
        response.transferBytes = UInt64(totals.bytes)
        response.transferMicros = UInt64(clamping: totals.busy.wholeMicroseconds)
        return response
    }

    /// A fence for a prefill whose other ranks write heads: they signal it
    /// after each chunk, and the prefill answers once all have.
    private func openFence(_ target: Loom_Cluster_Reservation, _ writes: ChunkWrites, received: ContinuousClock.Instant) throws -> OpenFence? {
        guard case .heads(let writer) = writes, writer.followersSending > 0 else { return nil }
        let lease = writes.target.lease
        let fence = fences.open(until: received + lease)
        var export = Loom_Cluster_RankExport()
        export.target = target
        (export.leaderHost, export.leaderPort, export.fence) = (fences.host, UInt32(fences.port.value), fence)
        return OpenFence(immediate: fence, followers: writer.followersSending, forRanks: (try export.serializedBytes(), received + lease * 0.8),
                         until: received + lease)
    }

    /// Runs the prompt and returns what its first token says: the token, or
    /// how the request ended when that token was a stop token.
    private func firstToken(of request: GenerationRequest) async throws -> Loom_Cluster_PrefillResponse {
        var response = Loom_Cluster_PrefillResponse()
        do {
            for try await output in engine.generate(request) {
                switch output {
                case .token(let token, let logprob, let top): response.first = Loom_Cluster_Token(token, logprob: logprob, top: top)
                case .finished(let reason, let usage):
                    // The prompt tokens this worker's cache did not have.
                    response.computedTokens = UInt32(clamping: usage.promptTokens - usage.cachedPromptTokens)
                    // Only a stop token as the very first token ends the
                    // request here; otherwise decoding goes on remotely.
                    guard !response.hasFirst else { break }
                    guard reason == .stop else {
                        throw WireError(.handlerFailed, "the prefill ended as \(reason.rawValue) before its first token (is this worker shutting down?)")
                    }
                    response.finished = Loom_Cluster_Finished(reason, usage)
                }
            }
        } catch let error as SchedulerError {
            throw WireError(error)
        }
        return response
    }

    /// What the chunk writes added up to.
    struct TransferTotals {
        /// Chunks written.
        var writes = 0
        var bytes = 0
        /// Time spent inside writes (they overlap the compute).
        var busy = Duration.zero
    }

    /// Writes each exported chunk into the decode worker's blocks as it
    /// arrives, until the stream ends.
    private func write(_ chunks: AsyncStream<KVChunk>, with writes: ChunkWrites, startedAt received: ContinuousClock.Instant) async throws -> TransferTotals {
        var totals = TransferTotals()
        for await chunk in chunks {
            try writes.target.checkLease(since: received)
            let start = ContinuousClock.now
            switch writes {
            case .whole(let target):
                do {
                    try await write(chunk, into: target)
                } catch let error as TransferError {
                    throw WireError(error)
                }
                totals.bytes += chunk.bytes.readableBytes
            case .heads(let writer):
                let (bytes, backends) = try await writer.write(chunk, peers: peers)
                totals.bytes += bytes
                // A block counts once, however many ranks its heads went to.
                for (i, backend) in backends.enumerated() { calls.countWrite(over: backend, blocks: i == 0 ? chunk.blockCount : 0) }
            }
            totals.busy += ContinuousClock.now - start
            totals.writes += 1
        }
        return totals
    }

    private func write(_ chunk: KVChunk, into target: PrefillTarget) async throws {
        let operation = try WriteOperation.pages(
            of: chunk.bytes, pageLength: target.pageLength, to: target.region,
            pages: target.pages(from: chunk.firstBlock, count: chunk.blockCount), stride: target.pageLength, immediate: target.immediate)
        try await peers.withTransport(to: target.address, over: target.backend) { try await $0.write(operation) }
        calls.countWrite(over: target.backend, blocks: chunk.blockCount)
    }
}

/// A decode worker's reservation as the prefill worker writes into it.
struct PrefillTarget {
    let region: RegionDescriptor
    /// The reserved pool blocks, for the sequence's blocks from `firstBlock` on.
    let blocks: [Int]
    let firstBlock: Int
    let pageLength: Int
    let immediate: UInt32
    let lease: Duration
    let address: RPCAddress
    let backend: TransferBackend

    /// `bytesPerBlock`: this worker's, which rank 0's must match (nil when
    /// the two split heads differently, and each rank is checked).
    init(_ wire: Loom_Cluster_Reservation, bytesPerBlock: Int?) throws {
        pageLength = Int(wire.bytesPerBlock)
        if let bytesPerBlock, pageLength != bytesPerBlock {
            throw WireError(.handlerFailed, "the decode worker's KV blocks are \(pageLength) bytes but ours are \(bytesPerBlock); are both serving the same model?")
        }
        do {
            region = try RegionDescriptor(serialized: [UInt8](wire.region))
        } catch {
            throw WireError(.badMessage, "the reservation's region descriptor does not decode (\(error)); is the decode worker the same Loom version?")
        }
        blocks = wire.blocks.map { Int($0) }
        firstBlock = Int(wire.firstBlock)
        immediate = wire.immediate
        lease = .milliseconds(Int(wire.leaseMs))
        address = .tcp(host: wire.transferHost, port: Int(wire.transferPort))
        backend = .choose(for: region, peerHost: wire.hostID)
    }

    /// Close to the lease's end the decode worker may free the blocks while
    /// the bytes are on their way; better to fail than to land in someone
    /// else's KV.
    func checkLease(since received: ContinuousClock.Instant) throws {
        guard ContinuousClock.now - received < lease * 0.8 else {
            throw WireError(.deadlineExceeded, "the prefill took most of the decode worker's \(lease) lease; not writing into blocks it may have reclaimed")
        }
    }

    /// The reserved blocks that receive the sequence's blocks
    /// `firstBlock ..< firstBlock + count`.
    func pages(from first: Int, count: Int) throws(TransferError) -> ArraySlice<Int> {
        let start = first - firstBlock
        guard start >= 0, start + count <= blocks.count else {
            throw TransferError(.invalidRequest, "blocks \(first)..<\(first + count) fall outside the \(blocks.count) reserved from block \(firstBlock)")
        }
        return blocks[start..<(start + count)]
    }
}

/// One prefill's fence: `followers` ranks signal it once per chunk.
struct OpenFence {
    let immediate: UInt32
    let followers: Int
    /// What the other ranks are told, and until when they may write.
    let forRanks: (target: [UInt8], deadline: ContinuousClock.Instant)
    let until: ContinuousClock.Instant

    /// Waits for every rank's signal for `chunks` chunks; a rank that never
    /// sends its own is a failed prefill.
    func settle(chunks: Int, with fences: PrefillFences) async -> Result<Void, any Error> {
        do {
            try await fences.wait(immediate, count: chunks * followers, until: until)
            return .success(())
        } catch {
            return .failure(WireError(.deadlineExceeded, "a rank of this prefill group did not finish writing its KV heads of \(chunks) chunks before the decode worker's lease ran out (\(error)); see that rank's log, or restart the group"))
        }
    }
}

/// How a prefill's chunks reach the decode worker: whole blocks into one
/// pool, or each rank's heads into the ranks that hold them.
enum ChunkWrites: Sendable {
    case whole(PrefillTarget)
    case heads(HeadWriter)

    var target: PrefillTarget {
        switch self {
        case .whole(let target): target
        case .heads(let writer): writer.reservation
        }
    }

    /// Writes the decode worker counts per chunk.
    var countedPerChunk: Int {
        switch self {
        case .whole: 1
        case .heads(let writer): writer.countedPerChunk
        }
    }
}

/// Blocks the engine exported, in one buffer: the one copy out of the pool.
struct KVChunk: Sendable {
    var firstBlock: Int
    var blockCount: Int
    var bytes: ByteBuffer
}

/// The engine's export sink for one prefill: each chunk is copied straight
/// into a buffer the transfer sends from, and queued for the writer.
final class KVChunkStream: KVExportSink {
    private let continuation: AsyncStream<KVChunk>.Continuation
    private let bytesPerBlock: Int
    private let chunks = Atomic<Int>(0)

    private init(_ continuation: AsyncStream<KVChunk>.Continuation, bytesPerBlock: Int) {
        self.continuation = continuation
        self.bytesPerBlock = bytesPerBlock
    }

    static func make(bytesPerBlock: Int) -> (AsyncStream<KVChunk>, KVChunkStream) {
        let (stream, continuation) = AsyncStream<KVChunk>.makeStream()
        return (stream, KVChunkStream(continuation, bytesPerBlock: bytesPerBlock))
    }

    func export(firstBlock: Int, blockCount: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let count = blockCount * bytesPerBlock
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
            fill(UnsafeMutableRawBufferPointer(rebasing: out.prefix(count)))
            return count
        }
        continuation.yield(KVChunk(firstBlock: firstBlock, blockCount: blockCount, bytes: buffer))
        chunks.add(1, ordering: .relaxed)
    }

    /// Chunks the engine exported so far.
    var exported: Int { chunks.load(ordering: .relaxed) }

    /// No more chunks: the prompt is done (or failed).
    func finish() {
        continuation.finish()
    }
}
