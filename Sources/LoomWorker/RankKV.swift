import Foundation
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

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
    private let outbox: AsyncStream<Outgoing>.Continuation
    private let group: GroupKV
    private let geometry: KVGeometry
    private let plans = Mutex(RecentPlans())

    /// One chunk of this rank's heads on its way, with where it goes.
    struct Outgoing: Sendable {
        var plan: RankPlan
        var chunk: KVChunk
        var deadline: ContinuousClock.Instant
    }

    /// Registers `bytes` of pool and serves writes into it on `host`.
    public init(rank: Int, heads: [Range<Int>], config: ModelConfig, blockSize: Int, bytes: Int, host: String) async throws {
        let epoch = UInt64(Date().timeIntervalSince1970 * 1e6)
        var configuration = RPCConfiguration(nodeName: "tp-rank-\(rank)-kv")
        configuration.epoch = epoch
        // Named like a worker's pool (`<name>.pid<PID>`), so the next start
        // on this host removes the file of a rank that was killed.
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
        let (stream, outbox) = AsyncStream<Outgoing>.makeStream()
        self.outbox = outbox
        sender = Task { [transfer, rank] in
            await Self.send(stream, rank: rank, peers: transfer.peers)
        }
    }

    public var port: Int {
        if case .tcp(_, let port) = server.localAddress { return port }
        return 0
    }

    /// Copies this rank's heads of `export`'s blocks out of `kv` (the one
    /// copy, on the compute thread) and queues them for the sender; nothing
    /// when this rank's heads all go from a lower rank.
    public func export(_ export: BlockExport, from kv: KVCacheMemory) {
        let deadline = ContinuousClock.now + .milliseconds(export.millisecondsLeft)
        let plan: RankPlan
        do {
            plan = try plans.withLock { try $0.plan(for: export.target, group: group, geometry: geometry) }
        } catch {
            return report("could not read where its KV heads go (\(error))", blocks: export.firstBlock..<export.firstBlock + export.blocks.count)
        }
        guard !plan.writer.scatters.isEmpty else { return }
        let size = geometry.bytesPerBlock(heads: group.heads[group.rank].count)
        guard export.blocks.allSatisfy({ (0..<kv.blockCount).contains(Int($0)) }) else {
            return report("was asked for blocks outside its pool of \(kv.blockCount)", blocks: export.firstBlock..<export.firstBlock + export.blocks.count)
        }
        var buffer = ByteBufferAllocator().buffer(capacity: export.blocks.count * size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: export.blocks.count * size) { out in
            for (i, block) in export.blocks.enumerated() {
                (out.baseAddress! + i * size).copyMemory(from: UnsafeRawPointer(kv.base) + Int(block) * size, byteCount: size)
            }
            return export.blocks.count * size
        }
        outbox.yield(Outgoing(plan: plan, chunk: KVChunk(firstBlock: export.firstBlock, blockCount: export.blocks.count, bytes: buffer), deadline: deadline))
    }

    /// Writes each queued chunk in order, then signals the prefill
    /// leader's fence, written or not: a failed write is this rank's to
    /// report, and the decode worker's attach then times out and gives its
    /// blocks back. After one failure a prefill's later chunks are dropped.
    private static func send(_ chunks: AsyncStream<Outgoing>, rank: Int, peers: TransferPeers) async {
        var failed: Set<UInt32> = []
        for await item in chunks {
            let fence = item.plan.fence
            if !failed.contains(fence) {
                do {
                    guard ContinuousClock.now < item.deadline else {
                        throw WireError(.deadlineExceeded, "the decode worker's lease was nearly over")
                    }
                    _ = try await item.plan.writer.write(item.chunk, peers: peers)
                } catch {
                    failed.insert(fence)
                    if failed.count > 256 { failed.removeFirst() }
                    report(rank: rank, "did not write its KV heads (\(error)); the decode worker will time out the request and it is retried", blocks: item.chunk.firstBlock..<item.chunk.firstBlock + item.chunk.blockCount)
                }
            }
            do {
                try await peers.withTransport(to: item.plan.leader, over: .tcp) { try await $0.write(.immediateOnly(fence)) }
            } catch {
                report(rank: rank, "could not tell its leader at \(item.plan.leader) it is done with a chunk (\(error)); the prefill fails when its lease runs out", blocks: item.chunk.firstBlock..<item.chunk.firstBlock + item.chunk.blockCount)
            }
        }
    }

    private func report(_ what: String, blocks: Range<Int>) {
        Self.report(rank: group.rank, what, blocks: blocks)
    }

    private static func report(rank: Int, _ what: String, blocks: Range<Int>) {
        FileHandle.standardError.write(Data("loom worker: tensor-parallel rank \(rank) \(what) (blocks \(blocks.lowerBound)..<\(blocks.upperBound) of a prefill)\n".utf8))
    }

    /// Lets the queued chunks go out (at most `within`), then stops serving.
    public func close(within: Duration = .seconds(5)) async {
        outbox.finish()
        let sender = self.sender
        let timer = Task {
            try? await Task.sleep(for: within)
            sender.cancel()
        }
        await sender.value
        timer.cancel()
        running.cancel()
        transfer.close()
    }
}

/// Where this rank's heads of one prefill go, and whom it tells.
struct RankPlan: Sendable {
    var writer: HeadWriter
    var leader: RPCAddress
    var fence: UInt32
}

/// The plans of the prefills this rank exported for lately, by what the
/// leader sent (the same bytes in every step of one prefill).
struct RecentPlans {
    private var entries: [(target: [UInt8], plan: RankPlan)] = []

    mutating func plan(for target: [UInt8], group: GroupKV, geometry: KVGeometry) throws -> RankPlan {
        if let entry = entries.last(where: { $0.target == target }) { return entry.plan }
        let export = try Loom_Cluster_RankExport(serializedBytes: target)
        let plan = RankPlan(writer: try HeadWriter(export.target, from: group, geometry: geometry),
                            leader: .tcp(host: export.leaderHost, port: Int(export.leaderPort)), fence: export.fence)
        entries.append((target, plan))
        if entries.count > 64 { entries.removeFirst(entries.count - 64) }
        return plan
    }
}
