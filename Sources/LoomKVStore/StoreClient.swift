import Foundation
import NIOCore
import LoomProtocol
import LoomTransfer
import LoomWire

/// A worker's (or a tool's) side of one store node: puts blocks from a
/// registered region into the node's slots, and gets a chain's leading run
/// pushed into blocks it reserved. One RPC connection, one transport.
public struct StoreClient: Sendable {
    public let connection: RPCConnection
    public let peers: TransferPeers
    public let writer: String

    public init(connection: RPCConnection, peers: TransferPeers, writer: String) {
        self.connection = connection
        self.peers = peers
        self.writer = writer
    }

    /// How a put went, block by block.
    public struct PutOutcome: Equatable, Sendable {
        public var stored = 0
        /// Held by the store already: nothing was sent for them.
        public var existed = 0
        /// No room now, or refused (with the store's reasons).
        public var full = 0
        public var refused: [String] = []

        public init(stored: Int = 0, existed: Int = 0, full: Int = 0, refused: [String] = []) {
            self.stored = stored
            self.existed = existed
            self.full = full
            self.refused = refused
        }
    }

    /// Offers `blocks` (each header, and the page of `source` its bytes are
    /// in, `stride` bytes apart), writes those the store lacks in one
    /// write, and commits them.
    public func put(
        _ blocks: [(header: StoredBlockHeader, page: Int)], from source: RegisteredRegion, stride: Int,
        timeout: Duration = .seconds(10)
    ) async throws -> PutOutcome {
        try await put(blocks.map(\.header), timeout: timeout) { pages, region, slotBytes, immediate in
            try .paged(from: source, pages: pages.map { blocks[$0.index].page }, stride: stride, to: region, pages: pages.map { $0.slot },
                       stride: slotBytes, pageLength: slotBytes, immediate: immediate)
        }
    }

    /// Offers `headers`, the `i`th block's bytes in `blocks[i]`, and puts
    /// those the store lacks: how a worker publishes blocks it copied out of
    /// its pool. The write sends the buffers as they are.
    public func put(_ headers: [StoredBlockHeader], blocks: [ByteBuffer], timeout: Duration = .seconds(10)) async throws -> PutOutcome {
        precondition(headers.count == blocks.count, "one buffer per header")
        return try await put(headers, timeout: timeout) { pages, region, slotBytes, immediate in
            try .pages(pages.map { blocks[$0.index] }, to: region, pages: pages.map(\.slot), stride: slotBytes, immediate: immediate)
        }
    }

    /// Reserve, write what `operation` makes of the reserved (block index,
    /// slot) pairs, commit; then again for the blocks that found no room,
    /// as long as a round stores something. A store whose DRAM tier is
    /// smaller than a batch has room for the rest once the first part is
    /// committed (and can be evicted to its disk).
    private func put(
        _ headers: [StoredBlockHeader], timeout: Duration,
        operation: ([(index: Int, slot: Int)], RegionDescriptor, Int, UInt32) throws -> WriteOperation
    ) async throws -> PutOutcome {
        var outcome = PutOutcome()
        var offered = Array(headers.indices)
        while !offered.isEmpty {
            let (round, full) = try await putOnce(offered, of: headers, timeout: timeout, operation: operation)
            outcome.stored += round.stored
            outcome.existed += round.existed
            outcome.full += round.full
            outcome.refused += round.refused
            guard round.stored > 0, !full.isEmpty else {
                outcome.full += full.count
                break
            }
            offered = full
        }
        return outcome
    }

    /// One reserve, write and commit of the blocks at `offered`; those that
    /// found no room are returned apart (not counted in the outcome).
    private func putOnce(
        _ offered: [Int], of headers: [StoredBlockHeader], timeout: Duration,
        operation: ([(index: Int, slot: Int)], RegionDescriptor, Int, UInt32) throws -> WriteOperation
    ) async throws -> (PutOutcome, full: [Int]) {
        var reserve = Loom_Kvstore_PutReserveRequest()
        reserve.writer = writer
        reserve.headers = offered.map { Data(headers[$0].encoded()) }
        let (reservation, _) = try await connection.unary(StoreRPC.putReserve, reserve, timeout: timeout)
        var outcome = PutOutcome(refused: reservation.refused)
        var pages: [(index: Int, slot: Int)] = []
        var full: [Int] = []
        for (position, slot) in reservation.slots.enumerated() {
            switch slot {
            case 0...: pages.append((offered[position], Int(slot)))
            case KVStoreNode.exists: outcome.existed += 1
            case KVStoreNode.full: full.append(offered[position])
            default: outcome.full += 1
            }
        }
        // Nothing reserved (all held already, or no room): nothing to commit.
        guard !pages.isEmpty else { return (outcome, full) }
        let region = try RegionDescriptor(serialized: [UInt8](reservation.region))
        let write = try operation(pages, region, Int(reservation.slotBytes), reservation.immediate)
        try await peers.write(write, into: region, at: .tcp(host: reservation.transferHost, port: Int(reservation.transferPort)),
                              peerHost: reservation.hostID)
        var commit = Loom_Kvstore_PutCommitRequest()
        commit.immediate = reservation.immediate
        commit.expectedWrites = 1
        commit.timeoutMs = UInt32(clamping: timeout.wholeMilliseconds)
        let (committed, _) = try await connection.unary(StoreRPC.putCommit, commit, timeout: timeout + .seconds(1))
        outcome.stored = Int(committed.committed)
        outcome.full += committed.refused.count
        outcome.refused += committed.refused
        return (outcome, full)
    }

    /// Asks for `chain`'s leading run to be pushed into `target`'s blocks;
    /// returns how many blocks landed (the caller's counter for the target's
    /// immediate sees the write before this returns).
    public func get(_ chain: [UInt64], into target: Loom_Kvstore_GetTarget, timeout: Duration = .seconds(10)) async throws -> Int {
        Int(try await fetch(chain, into: target, timeout: timeout).blocks)
    }

    /// `get`, with the store's whole answer (how many came from disk too).
    public func fetch(_ chain: [UInt64], into target: Loom_Kvstore_GetTarget, timeout: Duration = .seconds(10)) async throws -> Loom_Kvstore_GetResponse {
        var request = Loom_Kvstore_GetRequest()
        request.chain = chain
        request.target = target
        return try await connection.unary(StoreRPC.get, request, timeout: timeout).0
    }
}

extension Loom_Kvstore_GetTarget {
    /// Pages `blocks` of `region` (`bytesPerBlock` each), whose owner takes
    /// transfers at `address` on this host: where a get's blocks go, the
    /// push carrying `immediate`.
    public init(_ region: RegisteredRegion, blocks: [Int], bytesPerBlock: Int, immediate: UInt32, transferAt address: RPCAddress) throws {
        guard case .tcp(let host, let port) = address else {
            throw TransferError(.invalidRequest, "a store pushes to a tcp address, not \(address)")
        }
        self.init()
        self.region = try region.descriptor.proto.serializedData()
        self.blocks = blocks.map { UInt32($0) }
        self.bytesPerBlock = UInt64(bytesPerBlock)
        self.immediate = immediate
        transferHost = host
        transferPort = UInt32(port)
        hostID = HostIdentity.current
    }
}
