import Foundation
import LoomBench
import LoomEngine
import LoomKVStore
import LoomModel
import LoomPeer
import LoomProtocol
import LoomTransfer
import LoomWire

/// The bench's own side: a pool of blocks registered like a worker's, the
/// raw writes of the reference and the store client's puts and gets.
struct StoreBench {
    let layout: StoredLayout
    let blocks: Int
    let batch: Int
    let backend: TransferBackend
    let hasher: BlockHasher
    let transfer: TransferNode
    /// Blocks 0..<blocks are the source; blocks..<2*blocks receive gets.
    let pool: RegisteredRegion
    let server: RPCServer
    let serving: Task<Void, Error>

    init(layout: StoredLayout, blocks: Int, batch: Int, backend: TransferBackend, hasher: BlockHasher, host: String = "127.0.0.1") async throws {
        self.layout = layout
        self.blocks = blocks
        self.batch = batch
        self.backend = backend
        self.hasher = hasher
        let target = TransferTarget(regions: RegionTable(owner: "bench-\(getpid())", epoch: 1))
        transfer = TransferNode(target: target, receivers: [SharedMemoryReceiver(target: target), TCPReceiver(target: target)],
                                configuration: RPCConfiguration(nodeName: "bench"))
        pool = try transfer.register(length: 2 * blocks * layout.payloadBytes, over: [backend])
        var random = SystemRandomNumberGenerator()
        let filler = (0..<layout.payloadBytes).map { _ in UInt8.random(in: 0...255, using: &random) }
        for block in 0..<blocks { try pool.fill(offset: block * layout.payloadBytes, with: filler) }
        var services = RPCServices()
        transfer.serve(into: &services)
        let server = try await RPCServer.bind(.tcp(host: host, port: 0), services: services, configuration: transfer.configuration)
        self.server = server
        serving = Task { try await server.run() }
    }

    func close() {
        serving.cancel()
        transfer.close()
    }

    struct Result {
        var backend: String
        var blockBytes: Int
        var raw: Double, put: Double, get: Double
        var putsPerSecond: Double, getsPerSecond: Double
        /// With --compute: seconds to fetch one block (get and import
        /// copy), and to compute it with the model.
        var fetchSeconds: Double?
        var computeSeconds: Double?

        var table: String {
            func gb(_ value: Double) -> String { String(format: "%.2f GB/s", value) }
            var lines = [
                "KV store, \(backend), blocks of \(blockBytes) bytes (median of runs)",
                "  raw transfer writes  \(gb(raw))",
                "  put (reserve, write, commit)  \(gb(put))  \(String(format: "%.0f", putsPerSecond)) blocks/s  \(String(format: "%.2f", put / raw))× raw",
                "  get (lookup, lease, push)  \(gb(get))  \(String(format: "%.0f", getsPerSecond)) blocks/s  \(String(format: "%.2f", get / raw))× raw",
            ]
            if let fetchSeconds, let computeSeconds {
                lines.append(String(format: "  per block: fetch %.3f ms (get and copy into the pool), compute %.2f ms (prefill): fetch %.3f× compute",
                                    fetchSeconds * 1000, computeSeconds * 1000, fetchSeconds / computeSeconds))
            }
            return lines.joined(separator: "\n")
        }

        var json: String {
            var text = String(format: #"{"bench":"kvstore","backend":"%@","block_bytes":%d,"raw_gbytes_per_s":%.3f,"put_gbytes_per_s":%.3f,"get_gbytes_per_s":%.3f,"put_blocks_per_s":%.0f,"get_blocks_per_s":%.0f,"put_vs_raw":%.3f,"get_vs_raw":%.3f"#,
                              backend, blockBytes, raw, put, get, putsPerSecond, getsPerSecond, put / raw, get / raw)
            if let fetchSeconds, let computeSeconds {
                text += String(format: #","fetch_ms_per_block":%.4f,"compute_ms_per_block":%.3f,"fetch_vs_compute":%.4f"#,
                               fetchSeconds * 1000, computeSeconds * 1000, fetchSeconds / computeSeconds)
            }
            return text + "}"
        }
    }

    func run(runs: Int, store: RPCAddress, peer: RPCAddress, peerRegion: RegionDescriptor, progress: (String) -> Void) async throws -> Result {
        var raw: [Double] = [], put: [Double] = [], get: [Double] = []
        try await RPCConnection.withConnection(to: store, configuration: transfer.configuration) { connection in
            let client = StoreClient(connection: connection, peers: transfer.peers, writer: "bench")
            for run in 0...runs {
                let times = (
                    raw: try await timed { try await rawWrites(to: peer, region: peerRegion) },
                    put: try await timed { try await puts(client, run: run) },
                    get: try await timed { try await gets(client, run: run) })
                guard run > 0 else { continue }
                let total = Double(blocks * layout.payloadBytes) / 1e9
                raw.append(total / times.raw); put.append(total / times.put); get.append(total / times.get)
                progress(String(format: "run %d: raw %.2f, put %.2f, get %.2f GB/s", run, raw.last!, put.last!, get.last!))
            }
        }
        let median = { (values: [Double]) in Percentiles.percentile(values.sorted(), 50) }
        let bytes = Double(layout.payloadBytes) / 1e9
        return Result(backend: backend.rawValue, blockBytes: layout.payloadBytes, raw: median(raw), put: median(put), get: median(get),
                      putsPerSecond: median(put) / bytes, getsPerSecond: median(get) / bytes)
    }

    private func timed(_ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        return (ContinuousClock.now - start).seconds
    }

    /// The same pages, batch by batch, as plain writes into the peer server.
    private func rawWrites(to peer: RPCAddress, region: RegionDescriptor) async throws {
        try await transfer.peers.withTransport(to: peer, over: backend) { transport in
            for start in stride(from: 0, to: blocks, by: batch) {
                let pages = Array(start..<min(blocks, start + batch))
                try await transport.write(try .paged(from: pool, pages: pages, stride: layout.payloadBytes, to: region, pages: pages,
                                                     stride: layout.payloadBytes, pageLength: layout.payloadBytes, immediate: 1))
            }
        }
    }

    /// Every run stores a chain of its own (the tokens differ), so no put
    /// finds its blocks stored already.
    private func headers(run: Int) -> [StoredBlockHeader] {
        var headers: [StoredBlockHeader] = []
        let checksum = StoredBlockHeader.checksum(of: UnsafeRawBufferPointer(rebasing: pool.bytes[0..<layout.payloadBytes]))
        for block in 0..<blocks {
            let tokens = (0..<layout.blockSize).map { TokenID(run * 1_000_000 + block * layout.blockSize + $0) }
            headers.append(StoredBlockHeader(hash: hasher.hash(parent: headers.last?.hash, tokens: tokens), parent: headers.last?.hash,
                                             modelID: hasher.modelID, layout: layout, tokens: tokens, checksum: checksum))
        }
        return headers
    }

    /// One put of every block, `batch` per reservation: one write in
    /// flight at a time, as in the raw writes.
    func puts(_ client: StoreClient, run: Int) async throws {
        let all = headers(run: run).enumerated().map { ($1, $0) }
        let outcome = try await client.put(all, from: pool, stride: layout.payloadBytes, batch: batch)
        guard outcome.stored == all.count else { throw BenchError("a put stored \(outcome.stored) of \(all.count) blocks: \(outcome)") }
    }

    func gets(_ client: StoreClient, run: Int) async throws {
        let chain = headers(run: run).map(\.hash.rawValue)
        for start in stride(from: 0, to: blocks, by: batch) {
            let end = min(blocks, start + batch)
            let target = try Loom_Kvstore_GetTarget(pool, blocks: (start..<end).map { blocks + $0 }, bytesPerBlock: layout.payloadBytes,
                                                    immediate: UInt32(2 + start), transferAt: server.localAddress)
            // A get is a chain's leading run: ask from this batch's first block.
            let landed = try await client.get(Array(chain[start..<end]), into: target)
            guard landed == end - start else { throw BenchError("a get returned \(landed) of \(end - start) blocks") }
        }
    }
}
