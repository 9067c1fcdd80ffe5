import Foundation
import LoomEngine
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Testing
@testable import LoomKVStore

/// A store node and a worker-like peer, each a real RPC server on loopback,
/// moving blocks over the real transfer backends.
struct StoreHarness {
    static let layout = StoredLayout(layers: 2, kvHeads: 1, headDim: 8, blockSize: 4)
    static let modelID: UInt64 = 0x5EED
    let hasher = BlockHasher(modelID: modelID, blockSize: 4)
    let store: KVStoreNode
    let storeServer: RPCServer
    /// The worker's pool: 16 blocks, registered like a worker's.
    let worker: TransferNode
    let pool: RegisteredRegion
    let workerServer: RPCServer
    let tasks: [Task<Void, Error>]

    static func start(
        slots: Int = 8, lease: Duration = .seconds(120), pool over: TransferBackend = .shm, disk: String? = nil,
        admission: DiskAdmission = .afterFirstReuse
    ) async throws -> StoreHarness {
        let configuration = StoreConfiguration(
            name: "store-\(UInt32.random(in: 0...UInt32.max))", host: "127.0.0.1", port: 0, slots: slots,
            modelID: modelID, layout: layout, lease: lease, disk: disk.map { ($0, 1 << 20) }, admission: admission)
        let store = try KVStoreNode(configuration: configuration, epoch: 1)
        let storeServer = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: store.services, configuration: store.rpcConfiguration)
        guard case .tcp(_, let port) = storeServer.localAddress else { preconditionFailure() }
        store.advertise(port: port)
        let target = TransferTarget(regions: RegionTable(owner: "worker-\(UInt32.random(in: 0...UInt32.max))", epoch: 1))
        let worker = TransferNode(target: target, receivers: [SharedMemoryReceiver(target: target), TCPReceiver(target: target)],
                                  configuration: RPCConfiguration(nodeName: "worker"))
        let pool = try worker.register(length: 16 * layout.payloadBytes, over: [over])
        var services = RPCServices()
        worker.serve(into: &services)
        let workerServer = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: worker.configuration)
        let tasks = [
            Task { try await storeServer.run() }, Task { await store.sweep(every: .milliseconds(20)) },
            Task { try await workerServer.run() },
        ]
        return StoreHarness(store: store, storeServer: storeServer, worker: worker, pool: pool, workerServer: workerServer, tasks: tasks)
    }

    func stop() async {
        for task in tasks { task.cancel() }
        for task in tasks { _ = try? await task.value }
        worker.close()
        store.shutdown()
    }

    func withClient<R: Sendable>(_ body: (StoreClient) async throws -> R) async throws -> R {
        try await RPCConnection.withConnection(to: storeServer.localAddress, configuration: worker.configuration) { connection in
            try await body(StoreClient(connection: connection, peers: worker.peers, writer: "worker"))
        }
    }

    /// Fills pool block `page` with bytes derived from `seed` and returns
    /// the header of the block `tokens` (after `parent`) holding them.
    func block(_ page: Int, tokens: [TokenID], parent: BlockHash?, seed: UInt8, model: UInt64 = modelID) throws -> StoredBlockHeader {
        let bytes = (0..<Self.layout.payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed)) }
        try pool.fill(offset: page * Self.layout.payloadBytes, with: bytes)
        return bytes.withUnsafeBytes {
            StoredBlockHeader(hash: hasher.hash(parent: parent, tokens: tokens), parent: parent, modelID: model,
                              layout: Self.layout, tokens: tokens, payload: $0)
        }
    }

    /// A chain of `count` blocks in pool blocks 0..<count.
    func chain(_ count: Int) throws -> [StoredBlockHeader] {
        var headers: [StoredBlockHeader] = []
        for i in 0..<count {
            headers.append(try block(i, tokens: (0..<4).map { TokenID(i * 4 + $0) }, parent: headers.last?.hash, seed: UInt8(i)))
        }
        return headers
    }

    func target(blocks: [Int], immediate: UInt32) throws -> Loom_Kvstore_GetTarget {
        try Loom_Kvstore_GetTarget(pool, blocks: blocks, bytesPerBlock: Self.layout.payloadBytes, immediate: immediate,
                                   transferAt: workerServer.localAddress)
    }

    func poolBlock(_ page: Int) throws -> [UInt8] {
        try pool.read(offset: page * Self.layout.payloadBytes, count: Self.layout.payloadBytes)
    }
}

@Suite("KV store node: put and get over real RPC and transfer", .serialized)
struct StoreNodeTests {
    @Test("put, put again, then get the leading run back into other blocks", arguments: [TransferBackend.shm, .tcp])
    func aPutBlockComesBackByItsChain(over backend: TransferBackend) async throws {
        let harness = try await StoreHarness.start(pool: backend)
        let headers = try harness.chain(3)
        let (first, second, landed) = try await harness.withClient { client in
            let first = try await client.put(headers.enumerated().map { ($1, $0) }, from: harness.pool, stride: StoreHarness.layout.payloadBytes)
            let second = try await client.put(headers.enumerated().map { ($1, $0) }, from: harness.pool, stride: StoreHarness.layout.payloadBytes)
            let chain = headers.map(\.hash.rawValue) + [0xDEAD]
            let landed = try await client.get(chain, into: try harness.target(blocks: [9, 10, 11, 12], immediate: 77))
            return (first, second, landed)
        }
        #expect(first == StoreClient.PutOutcome(stored: 3))
        #expect(second == StoreClient.PutOutcome(existed: 3), "a second writer of the same blocks writes nothing")
        #expect(landed == 3, "the unknown fourth block ends the run")
        #expect(harness.worker.target.counters.count(77) == 1, "one write carried the worker's immediate")
        for i in 0..<3 { #expect(try harness.poolBlock(9 + i) == harness.poolBlock(i)) }
        #expect(try harness.poolBlock(12) == [UInt8](repeating: 0, count: StoreHarness.layout.payloadBytes))
        let stats = harness.store.stats
        #expect(stats.committed == 3 && stats.hitBlocks == 3 && stats.missedBlocks == 1 && stats.lookups == 1)
        await harness.stop()
    }

    @Test("a put of many batches, each reserved while the last is written, stores every block")
    func aPutOfManyBatchesStoresEveryBlockInOrder() async throws {
        let harness = try await StoreHarness.start(slots: 8)
        let headers = try harness.chain(7)
        let (outcome, landed) = try await harness.withClient { client in
            let outcome = try await client.put(headers.enumerated().map { ($1, $0) }, from: harness.pool, stride: StoreHarness.layout.payloadBytes, batch: 2)
            let landed = try await client.get(headers.map(\.hash.rawValue), into: try harness.target(blocks: Array(8..<15), immediate: 31))
            return (outcome, landed)
        }
        #expect(outcome == StoreClient.PutOutcome(stored: 7))
        #expect(landed == 7)
        for i in 0..<7 { #expect(try harness.poolBlock(8 + i) == harness.poolBlock(i), "block \(i)") }
        await harness.stop()
    }

    @Test("a write that leaves part of a reserved slot stale stores nothing for that block", arguments: [TransferBackend.shm, .tcp])
    func aSlotWrittenOnlyInPartIsRefusedAndNeverServed(over backend: TransferBackend) async throws {
        let harness = try await StoreHarness.start(pool: backend)
        let headers = try harness.chain(2)
        let bytes = StoreHarness.layout.payloadBytes
        try await harness.withClient { client in
            var reserve = Loom_Kvstore_PutReserveRequest()
            reserve.headers = headers.map { Data($0.encoded()) }
            let (reservation, _) = try await client.connection.unary(StoreRPC.putReserve, reserve)
            let slots = reservation.slots.map(Int.init)
            #expect(slots.count == 2 && slots.allSatisfy { $0 >= 0 })
            // Block 0 whole; block 1 only its first half (a writer's bug).
            let region = try RegionDescriptor(serialized: [UInt8](reservation.region))
            let pool = try harness.poolBlock(0) + harness.poolBlock(1).prefix(bytes / 2)
            let write = try WriteOperation.pages([ByteBuffer(bytes: pool.prefix(bytes)), ByteBuffer(bytes: pool.suffix(bytes / 2))],
                                                 to: region, pages: slots, stride: bytes, immediate: reservation.immediate)
            try await harness.worker.peers.withTransport(to: .tcp(host: reservation.transferHost, port: Int(reservation.transferPort)), over: backend) {
                try await $0.write(write)
            }
            var commit = Loom_Kvstore_PutCommitRequest()
            commit.immediate = reservation.immediate
            commit.expectedWrites = 1
            commit.timeoutMs = 5000
            let (response, _) = try await client.connection.unary(StoreRPC.putCommit, commit)
            #expect(response.committed == 1 && response.refused.count == 1)
            #expect(response.refused.first?.contains("did not cover its whole slot") == true, "\(response.refused)")
            let landed = try await client.get(headers.map(\.hash.rawValue), into: try harness.target(blocks: [8, 9], immediate: 5))
            #expect(landed == 1, "the half-written block is never served")
        }
        await harness.stop()
    }

    @Test func aBlockForAnotherModelOrUnderAWrongNameGetsNoSlot() async throws {
        let harness = try await StoreHarness.start()
        let foreign = try harness.block(0, tokens: [1, 2, 3, 4], parent: nil, seed: 1, model: 0xBAD)
        var misnamed = try harness.block(1, tokens: [1, 2, 3, 4], parent: nil, seed: 2)
        misnamed.tokens[3] = 9
        let outcome = try await harness.withClient { client in
            try await client.put([(foreign, 0), (misnamed, 1)], from: harness.pool, stride: StoreHarness.layout.payloadBytes)
        }
        #expect(outcome.stored == 0 && outcome.full == 2 && outcome.refused.count == 2)
        #expect(outcome.refused[0].contains("model") && outcome.refused[1].contains("chain hash"), "\(outcome.refused)")
        #expect(harness.store.stats.committed == 0)
        await harness.stop()
    }

    @Test func aCommitWithoutItsWritesStoresNothingAndASecondCommitIsRefused() async throws {
        let harness = try await StoreHarness.start()
        let header = try harness.chain(1)[0]
        try await harness.withClient { client in
            var reserve = Loom_Kvstore_PutReserveRequest()
            reserve.headers = [Data(header.encoded())]
            let (reservation, _) = try await client.connection.unary(StoreRPC.putReserve, reserve)
            #expect(reservation.slots == [0])
            var commit = Loom_Kvstore_PutCommitRequest()
            commit.immediate = reservation.immediate
            let (response, _) = try await client.connection.unary(StoreRPC.putCommit, commit)
            #expect(response.committed == 0 && response.refused.first?.contains("no writes") == true)
            await #expect(throws: WireError.self, "the reservation is gone") {
                _ = try await client.connection.unary(StoreRPC.putCommit, commit)
            }
        }
        #expect(harness.store.stats.committed == 0)
        await harness.stop()
    }

    @Test func aSecondWriterOfAReservedBlockWritesNothing() async throws {
        let harness = try await StoreHarness.start(slots: 1)
        let header = try harness.chain(1)[0]
        try await harness.withClient { client in
            var reserve = Loom_Kvstore_PutReserveRequest()
            reserve.headers = [Data(header.encoded())]
            let (first, _) = try await client.connection.unary(StoreRPC.putReserve, reserve)
            #expect(first.slots == [0])
            let (again, _) = try await client.connection.unary(StoreRPC.putReserve, reserve)
            #expect(again.slots == [-1], "reserved by another writer: this one writes nothing")
        }
        await harness.stop()
    }

    @Test func aWriterThatDiesBetweenReserveAndCommitLosesItsSlotsAfterTheLease() async throws {
        let harness = try await StoreHarness.start(slots: 1, lease: .milliseconds(200))
        let header = try harness.chain(1)[0]
        try await harness.withClient { client in
            var reserve = Loom_Kvstore_PutReserveRequest()
            reserve.headers = [Data(header.encoded())]
            let (first, _) = try await client.connection.unary(StoreRPC.putReserve, reserve)
            #expect(first.slots == [0])
            // The writer never commits. Once the sweeper reclaimed the slot
            // (bounded wait), a new put of the block gets it anew...
            var again = Loom_Kvstore_PutReservation()
            for _ in 0..<200 {
                try await Task.sleep(for: .milliseconds(50))
                (again, _) = try await client.connection.unary(StoreRPC.putReserve, reserve)
                if again.slots == [0] { break }
            }
            #expect(again.slots == [0], "the slot was reclaimed and reserved anew")
            #expect(again.immediate != first.immediate)
            // ...and a late write under the dead writer's immediate is refused.
            let region = try RegionDescriptor(serialized: [UInt8](first.region))
            let late = try WriteOperation.paged(from: harness.pool, pages: [0], stride: StoreHarness.layout.payloadBytes, to: region, pages: [0],
                                                stride: StoreHarness.layout.payloadBytes, pageLength: StoreHarness.layout.payloadBytes, immediate: first.immediate)
            await #expect(throws: TransferError.self) {
                try await harness.worker.peers.withTransport(to: .tcp(host: first.transferHost, port: Int(first.transferPort)), over: .tcp) { try await $0.write(late) }
            }
        }
        await harness.stop()
    }
}
