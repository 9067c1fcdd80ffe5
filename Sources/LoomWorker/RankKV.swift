import Foundation
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore

/// A follower rank's KV pool as the transfer layer sees it: registered, so
/// that prefill ranks write its heads straight in when its group decodes,
/// and the sender of its own heads when its group prefills (`export`,
/// called after each step that completed blocks of a prompt).
public final class RankKV: Sendable {
    public let pool: RegisteredRegion
    public let host: String
    private let transfer: TransferNode
    private let server: RPCServer
    private let running: Task<Void, Never>
    private let sender: Task<Void, Never>
    private let outbox: AsyncStream<(target: [UInt8], chunk: KVChunk)>.Continuation
    private let group: GroupKV
    private let geometry: KVGeometry
    private let bytesPerBlock: Int

    /// Registers `bytes` of pool and serves writes into it on `host`.
    public init(rank: Int, heads: [Range<Int>], config: ModelConfig, blockSize: Int, bytes: Int, host: String) async throws {
        let epoch = UInt64(Date().timeIntervalSince1970 * 1e6)
        var configuration = RPCConfiguration(nodeName: "tp-rank-\(rank)-kv")
        configuration.epoch = epoch
        let regions = RegionTable(owner: "tp\(rank)kv.pid\(getpid())", epoch: epoch)
        transfer = try .standard(target: TransferTarget(regions: regions), fabricProvider: nil, host: host, configuration: configuration)
        pool = try transfer.register(length: bytes, over: [.shm, .tcp])
        var services = RPCServices()
        transfer.serve(into: &services)
        server = try await RPCServer.bind(.tcp(host: host, port: 0), services: services, configuration: configuration)
        running = Task { [server] in try? await server.run() }
        self.host = host
        group = GroupKV(heads: heads, rank: rank)
        geometry = KVGeometry(config, blockSize: blockSize)
        bytesPerBlock = geometry.bytesPerBlock(heads: heads[rank].count)
        let (stream, outbox) = AsyncStream<(target: [UInt8], chunk: KVChunk)>.makeStream()
        self.outbox = outbox
        sender = Task { [transfer, group, geometry] in
            await Self.send(stream, group: group, geometry: geometry, peers: transfer.peers)
        }
    }

    public var port: Int {
        if case .tcp(_, let port) = server.localAddress { return port }
        return 0
    }

    /// Copies this rank's heads of `export`'s blocks out of `kv` (the one
    /// copy, on the compute thread) and queues them for the writer.
    public func export(_ export: BlockExport, from kv: KVCacheMemory) {
        let count = export.blocks.count * bytesPerBlock
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
            for (i, block) in export.blocks.enumerated() {
                (out.baseAddress! + i * bytesPerBlock).copyMemory(from: UnsafeRawPointer(kv.base) + Int(block) * bytesPerBlock, byteCount: bytesPerBlock)
            }
            return count
        }
        outbox.yield((export.target, KVChunk(firstBlock: export.firstBlock, blockCount: export.blocks.count, bytes: buffer)))
    }

    /// Writes each queued chunk in order. A failure is this rank's alone
    /// to tell: the decode worker's rank 0 never counts the writes, and
    /// its attach times out and gives the blocks back.
    private static func send(_ chunks: AsyncStream<(target: [UInt8], chunk: KVChunk)>, group: GroupKV, geometry: KVGeometry, peers: TransferPeers) async {
        var writers = RecentWriters()
        for await (target, chunk) in chunks {
            do {
                let (writer, since) = try writers.writer(for: target) { wire in
                    try HeadWriter(wire, from: group, geometry: geometry, kvHeads: group.heads.last!.upperBound)
                }
                try writer.reservation.checkLease(since: since)
                _ = try await writer.write(chunk, peers: peers)
            } catch {
                FileHandle.standardError.write(Data("loom worker: tensor-parallel rank \(group.rank) could not write its KV heads of blocks \(chunk.firstBlock)..<\(chunk.firstBlock + chunk.blockCount) to the decode worker: \(error)\n".utf8))
            }
        }
    }

    public func close() {
        outbox.finish()
        running.cancel()
        transfer.close()
    }
}

/// The writers of the reservations this rank exported to lately, each with
/// when it first heard of it: its lease counts from then.
private struct RecentWriters {
    private var entries: [(target: [UInt8], writer: HeadWriter, since: ContinuousClock.Instant)] = []

    mutating func writer(for target: [UInt8], make: (Loom_Cluster_Reservation) throws -> HeadWriter) throws -> (HeadWriter, ContinuousClock.Instant) {
        if let entry = entries.last(where: { $0.target == target }) { return (entry.writer, entry.since) }
        let writer = try make(try Loom_Cluster_Reservation(serializedBytes: target))
        entries.append((target, writer, .now))
        if entries.count > 64 { entries.removeFirst(entries.count - 64) }
        return (writer, .now)
    }
}
