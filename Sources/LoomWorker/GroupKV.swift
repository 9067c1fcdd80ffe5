import Foundation
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore

/// A worker's KV as the ranks of its tensor-parallel group split it: which
/// heads each rank holds, which rank this process is, and (on a decode
/// group's leader) where the other ranks' pools are. A worker of one
/// process is a group of one rank holding every head.
public struct GroupKV: Sendable {
    public var heads: [Range<Int>]
    public var rank: Int
    /// The followers' pools, handed to prefill workers with each reservation.
    public var pools: [Loom_Cluster_RankPool]

    public init(heads: [Range<Int>], rank: Int, pools: [Loom_Cluster_RankPool] = []) {
        self.heads = heads
        self.rank = rank
        self.pools = pools
    }

    public static func single(kvHeads: Int) -> GroupKV { GroupKV(heads: [0..<kvHeads], rank: 0) }

    public var isGroup: Bool { heads.count > 1 }
    /// The model's KV heads: the ranks' ranges ascend and cover them all.
    var kvHeads: Int { heads.last!.upperBound }
}

/// Layers, block size and head width: what both sides of a transfer must
/// share for a head's bytes to mean the same in each.
struct KVGeometry: Sendable {
    var layers: Int
    var blockSize: Int
    var headDim: Int

    init(_ config: ModelConfig, blockSize: Int) {
        (self.layers, self.blockSize, self.headDim) = (config.layerCount, blockSize, config.headDim)
    }

    func bytesPerBlock(heads: Int) -> Int { KVCacheLayout(layers: layers, kvDim: heads * headDim, blockSize: blockSize).bytesPerBlock }
}

/// One decode rank's pool, as a prefill rank writes into it.
struct RankPoolTarget: Sendable {
    let region: RegionDescriptor
    let address: RPCAddress
    let backend: TransferBackend
    let heads: Range<Int>

    init(_ wire: Loom_Cluster_RankPool, geometry: KVGeometry) throws {
        heads = Int(wire.firstKvHead)..<(Int(wire.firstKvHead) + Int(wire.kvHeads))
        guard Int(wire.bytesPerBlock) == geometry.bytesPerBlock(heads: heads.count) else {
            throw WireError(.handlerFailed, "decode rank \(wire.rank)'s KV blocks are \(wire.bytesPerBlock) bytes for \(heads.count) heads, but \(geometry.bytesPerBlock(heads: heads.count)) here; are both workers serving the same model?")
        }
        do {
            region = try RegionDescriptor(serialized: [UInt8](wire.region))
        } catch {
            throw WireError(.badMessage, "decode rank \(wire.rank)'s region descriptor does not decode (\(error)); is it the same Loom version?")
        }
        address = .tcp(host: wire.transferHost, port: Int(wire.transferPort))
        backend = .choose(for: region, peerHost: wire.hostID)
    }
}

/// One prefill rank's writes of a prompt's chunks when either worker is a
/// group: its heads of each chunk to every decode rank that holds them.
/// Each write to decode rank 0 carries the reservation's immediate; one to
/// another rank is followed, once it has landed, by the immediate alone to
/// rank 0, so rank 0 counts every rank's bytes without hearing from them.
struct HeadWriter: Sendable {
    let reservation: PrefillTarget
    let ranks: [RankPoolTarget]
    let scatters: [(decode: Int, scatter: HeadScatter)]
    /// Writes rank 0 counts per chunk, from every prefill rank.
    let countedPerChunk: Int
    /// Prefill ranks other than 0 with heads to send: each signals the
    /// leader's fence once per chunk.
    let followersSending: Int

    init(_ wire: Loom_Cluster_Reservation, from group: GroupKV, geometry: KVGeometry) throws {
        reservation = try PrefillTarget(wire, bytesPerBlock: nil)
        let ranks = try (wire.ranks.isEmpty ? [Loom_Cluster_RankPool(wholeOf: wire, kvHeads: group.kvHeads)] : wire.ranks).map {
            try RankPoolTarget($0, geometry: geometry)
        }
        guard ranks[0].region.regionID == reservation.region.regionID, ranks[0].region.epoch == reservation.region.epoch else {
            throw WireError(.badMessage, "the reservation's first rank pool is not the region it reserved blocks in; is the decode worker the same Loom version?")
        }
        let held = Set(ranks.flatMap { Array($0.heads) })
        guard held == Set(0..<group.kvHeads) else {
            throw WireError(.handlerFailed, "the decode worker's ranks hold KV heads \(held.sorted()) but the model has \(group.kvHeads); are both serving the same model, and did every decode rank join?")
        }
        self.ranks = ranks
        let routes = HeadRoutes(prefill: group.heads, decode: ranks.map(\.heads))
        let mine = group.heads[group.rank]
        scatters = routes.sends[group.rank].enumerated().filter { !$0.element.isEmpty }.map { d, heads in
            (d, HeadScatter(layers: geometry.layers, blockSize: geometry.blockSize, headDim: geometry.headDim,
                            source: mine, destination: ranks[d].heads, heads: heads))
        }
        countedPerChunk = routes.writesPerChunk
        followersSending = routes.sends.dropFirst().filter { $0.contains { !$0.isEmpty } }.count
    }

    /// `chunk` holds this rank's blocks (its heads only); returns the
    /// bytes sent, and the backend of each write.
    func write(_ chunk: KVChunk, peers: TransferPeers) async throws -> (bytes: Int, backends: [TransferBackend]) {
        let pages = try reservation.pages(from: chunk.firstBlock, count: chunk.blockCount)
        var sent = 0
        var backends: [TransferBackend] = []
        for (d, scatter) in scatters {
            let rank = ranks[d]
            let operation = try chunk.bytes.withUnsafeReadableBytes { bytes throws(TransferError) in
                try scatter.operation(bytes, pages: pages, to: rank.region, immediate: d == 0 ? reservation.immediate : nil)
            }
            do {
                try await peers.withTransport(to: rank.address, over: rank.backend) { try await $0.write(operation) }
                sent += operation.byteCount
                if d != 0 {
                    try await peers.withTransport(to: reservation.address, over: reservation.backend) { try await $0.write(.immediateOnly(reservation.immediate)) }
                }
            } catch let error as TransferError {
                throw WireError(error)
            }
            backends.append(rank.backend)
        }
        return (sent, backends)
    }
}

extension Loom_Cluster_RankPool {
    /// A decode worker's one pool, holding every head, as a rank's.
    init(wholeOf wire: Loom_Cluster_Reservation, kvHeads: Int) {
        self.init()
        (region, transferHost, transferPort, hostID) = (wire.region, wire.transferHost, wire.transferPort, wire.hostID)
        (self.kvHeads, bytesPerBlock) = (UInt32(kvHeads), wire.bytesPerBlock)
    }
}
