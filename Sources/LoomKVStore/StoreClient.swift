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
        /// Which of the offered blocks (by index) found no room in the
        /// end: counted in `full`, and worth offering again later.
        public var noRoom: [Int] = []

        public init(stored: Int = 0, existed: Int = 0, full: Int = 0, refused: [String] = []) {
            self.stored = stored
            self.existed = existed
            self.full = full
            self.refused = refused
        }

        mutating func add(_ other: PutOutcome) {
            stored += other.stored
            existed += other.existed
            full += other.full
            refused += other.refused
            noRoom += other.noRoom
        }
    }

    /// Which blocks a put offers in each round: all of them first, then
    /// again those that found no room, as long as a round stores something.
    struct PutRounds {
        private var offered: [Int]?
        private(set) var outcome = PutOutcome()

        init(count: Int) { offered = count > 0 ? Array(0..<count) : nil }

        var next: [Int]? { offered }

        mutating func finish(_ round: PutOutcome, full: [Int]) {
            outcome.add(round)
            if round.stored > 0 && !full.isEmpty {
                offered = full
            } else {
                outcome.full += full.count
                outcome.noRoom = full
                offered = nil
            }
        }
    }

    /// Offers `blocks` (each header, and the page of `source` its bytes are
    /// in, `stride` bytes apart), writes those the store lacks, and commits
    /// them, `batch` blocks per reservation.
    public func put(
        _ blocks: [(header: StoredBlockHeader, page: Int)], from source: RegisteredRegion, stride: Int,
        batch: Int = StoreClient.batch, timeout: Duration = .seconds(10)
    ) async throws -> PutOutcome {
        try await put(blocks.map(\.header), batch: batch, timeout: timeout) { pages, region, slotBytes, immediate in
            try .paged(from: source, pages: pages.map { blocks[$0.index].page }, stride: stride, to: region, pages: pages.map { $0.slot },
                       stride: slotBytes, pageLength: slotBytes, immediate: immediate)
        }
    }

    /// Offers `headers`, the `i`th block's bytes in `blocks[i]`, and puts
    /// those the store lacks: how a worker publishes blocks it copied out of
    /// its pool. The write sends the buffers as they are.
    public func put(
        _ headers: [StoredBlockHeader], blocks: [ByteBuffer], batch: Int = StoreClient.batch, timeout: Duration = .seconds(10)
    ) async throws -> PutOutcome {
        precondition(headers.count == blocks.count, "one buffer per header")
        return try await put(headers, batch: batch, timeout: timeout) { pages, region, slotBytes, immediate in
            try .pages(pages.map { blocks[$0.index] }, to: region, pages: pages.map(\.slot), stride: slotBytes, immediate: immediate)
        }
    }

    /// Blocks per reservation: 512 tokens, ~12 MB for SmolLM2.
    public static let batch = 32

    typealias Operation = ([(index: Int, slot: Int)], RegionDescriptor, Int, UInt32) throws -> WriteOperation

    /// Every block offered in rounds (`PutRounds`): a store whose DRAM tier
    /// is smaller than a batch has room for the rest once the first part is
    /// committed (and can be evicted to its disk).
    private func put(_ headers: [StoredBlockHeader], batch: Int, timeout: Duration, operation: Operation) async throws -> PutOutcome {
        precondition(batch > 0, "a put batch holds at least one block")
        var rounds = PutRounds(count: headers.count)
        while let offered = rounds.next {
            let (round, full) = try await pipelined(offered, batch: batch, of: headers, timeout: timeout, operation: operation)
            rounds.finish(round, full: full)
        }
        return rounds.outcome
    }

    /// One pass over `offered`, a batch at a time. While a batch is
    /// written, the next one is reserved and the last one committed, so only
    /// one write is ever in flight and it never waits on an RPC.
    private func pipelined(
        _ offered: [Int], batch: Int, of headers: [StoredBlockHeader], timeout: Duration, operation: Operation
    ) async throws -> (PutOutcome, full: [Int]) {
        let batches = Swift.stride(from: 0, to: offered.count, by: batch).map { Array(offered[$0..<min(offered.count, $0 + batch)]) }
        var outcome = PutOutcome(), full: [Int] = []
        guard var reserved = try await reserve(batches.first, of: headers, timeout: timeout) else { return (outcome, full) }
        var pending: Loom_Kvstore_PutCommitRequest?
        for index in batches.indices {
            async let following = reserve(batches.indices.contains(index + 1) ? batches[index + 1] : nil, of: headers, timeout: timeout)
            let last = pending
            async let committed = commit(last, timeout: timeout)
            pending = try await write(reserved, timeout: timeout, operation: operation)
            outcome.add(reserved.outcome)
            full += reserved.full
            outcome.add(try await committed)
            guard let next = try await following else { break }
            reserved = next
        }
        outcome.add(try await commit(pending, timeout: timeout))
        return (outcome, full)
    }

    /// What a store said to one batch's reservation.
    private struct Reserved: Sendable {
        var outcome: PutOutcome
        /// Offered blocks that found no room (apart, not counted).
        var full: [Int]
        /// (block index, slot) of the blocks to write.
        var pages: [(index: Int, slot: Int)]
        var reservation: Loom_Kvstore_PutReservation
    }

    private func reserve(_ offered: [Int]?, of headers: [StoredBlockHeader], timeout: Duration) async throws -> Reserved? {
        guard let offered else { return nil }
        var reserve = Loom_Kvstore_PutReserveRequest()
        reserve.writer = writer
        reserve.headers = offered.map { Data(headers[$0].encoded()) }
        let (reservation, _) = try await connection.unary(StoreRPC.putReserve, reserve, timeout: timeout)
        var reserved = Reserved(outcome: PutOutcome(refused: reservation.refused), full: [], pages: [], reservation: reservation)
        for (position, slot) in reservation.slots.enumerated() {
            switch slot {
            case 0...: reserved.pages.append((offered[position], Int(slot)))
            case KVStoreNode.exists: reserved.outcome.existed += 1
            case KVStoreNode.full: reserved.full.append(offered[position])
            default: reserved.outcome.full += 1
            }
        }
        return reserved
    }

    /// Writes the reserved blocks; returns the commit to send, if any was.
    private func write(_ reserved: Reserved, timeout: Duration, operation: Operation) async throws -> Loom_Kvstore_PutCommitRequest? {
        // Nothing reserved (all held already, or no room): nothing to commit.
        guard !reserved.pages.isEmpty else { return nil }
        let reservation = reserved.reservation
        let region = try RegionDescriptor(serialized: [UInt8](reservation.region))
        let write = try operation(reserved.pages, region, Int(reservation.slotBytes), reservation.immediate)
        try await peers.write(write, into: region, at: .tcp(host: reservation.transferHost, port: Int(reservation.transferPort)),
                              peerHost: reservation.hostID)
        var commit = Loom_Kvstore_PutCommitRequest()
        commit.immediate = reservation.immediate
        commit.expectedWrites = 1
        commit.timeoutMs = UInt32(clamping: timeout.wholeMilliseconds)
        return commit
    }

    private func commit(_ request: Loom_Kvstore_PutCommitRequest?, timeout: Duration) async throws -> PutOutcome {
        guard let request else { return PutOutcome() }
        let (committed, _) = try await connection.unary(StoreRPC.putCommit, request, timeout: timeout + .seconds(1))
        return PutOutcome(stored: Int(committed.committed), full: committed.refused.count, refused: committed.refused)
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
