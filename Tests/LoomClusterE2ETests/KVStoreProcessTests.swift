import Foundation
import LoomEngine
import LoomKVStore
import LoomModel
import LoomProtocol
import LoomTesting
import LoomTransfer
import LoomWire
import Testing

/// `loom kvstore` as its own process: it registers with a real router,
/// takes blocks of the real model's layout from another process over the
/// transfer layer, gives them back, and leaves the router on SIGTERM.
@Suite(.serialized) struct KVStoreProcessTests {
    @Test func aStoreNodeRegistersStoresAndServesBlocksAndLeavesOnSIGTERM() async throws {
        let model = try TestModel.path()
        let cluster = ClusterHarness(model: model)
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let (store, storeAddress) = try cluster.startStore("kvstore-0", dramMiB: 16)
        let status = try await cluster.waitForStatus("kvstore-0 healthy") { cluster.worker("kvstore-0", in: $0)?["healthy"] as? Bool == true }
        #expect(cluster.worker("kvstore-0", in: status)?["role"] as? String == "kvstore")

        let config = try ModelConfig(gguf: GGUFFile(path: model))
        let layout = StoredLayout(config)
        let hasher = BlockHasher(modelName: URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent)
        let peer = try await StorePeer(blocks: 4, layout: layout)
        defer { peer.close() }
        var headers: [StoredBlockHeader] = []
        for block in 0..<2 {
            let tokens = (0..<layout.blockSize).map { TokenID(100 + block * layout.blockSize + $0) }
            let bytes = (0..<layout.payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ block) }
            try peer.pool.fill(offset: block * layout.payloadBytes, with: bytes)
            headers.append(bytes.withUnsafeBytes {
                StoredBlockHeader(hash: hasher.hash(parent: headers.last?.hash, tokens: tokens), parent: headers.last?.hash,
                                  modelID: hasher.modelID, layout: layout, tokens: tokens, payload: $0)
            })
        }
        let address = try #require(RPCAddress(hostPort: storeAddress))
        let (put, landed) = try await RPCConnection.withConnection(to: address, configuration: peer.transfer.configuration) { connection in
            let client = StoreClient(connection: connection, peers: peer.transfer.peers, writer: "test")
            let put = try await client.put(headers.enumerated().map { ($1, $0) }, from: peer.pool, stride: layout.payloadBytes)
            let landed = try await client.get(headers.map(\.hash.rawValue), into: try peer.target(blocks: [2, 3], immediate: 9))
            return (put, landed)
        }
        #expect(put.stored == 2 && put.existed == 0 && put.refused.isEmpty, "\(put)")
        #expect(landed == 2)
        for block in 0..<2 {
            #expect(try peer.pool.read(offset: (2 + block) * layout.payloadBytes, count: layout.payloadBytes)
                    == peer.pool.read(offset: block * layout.payloadBytes, count: layout.payloadBytes))
        }
        _ = try await cluster.waitForStatus("the store's two blocks in its heartbeat") {
            cluster.worker("kvstore-0", in: $0)?["kv_blocks_used"] as? Int == 2
        }

        store.kill()
        #expect(store.process.terminationStatus == 0, "\(store.tail)")
        _ = try await cluster.waitForStatus("kvstore-0 gone", limit: .seconds(5)) { cluster.worker("kvstore-0", in: $0) == nil }
    }

    @Test func aWorkerPublishesTheBlocksItComputesToTheStoreOnce() async throws {
        let model = try TestModel.path()
        let cluster = ClusterHarness(model: model)
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let (_, storeAddress) = try cluster.startStore("kvstore-0", dramMiB: 64)
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", storeAddress])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])

        let question = "List the planets of the solar system in order from the sun, and give one fact about each of them."
        let first = try await cluster.complete(body(chat(question), maxTokens: 8))
        let usage = try #require((try JSONSerialization.jsonObject(with: Data(first.raw.utf8)) as? [String: Any])?["usage"] as? [String: Any])
        let prompt = try #require(usage["prompt_tokens"] as? Int), completion = try #require(usage["completion_tokens"] as? Int)
        #expect(prompt >= 32, "a prompt of several blocks: \(usage)")
        let stored = try await cluster.waitForStatus("the prompt's blocks in the store") { status in
            (cluster.worker("kvstore-0", in: status)?["kv_blocks_used"] as? Int ?? 0) >= prompt / 16
        }
        let count = cluster.worker("kvstore-0", in: stored)?["kv_blocks_used"] as? Int ?? 0
        #expect(count <= (prompt + completion) / 16, "only full blocks are published: \(count)")
        #expect(cluster.worker("kvstore-0", in: stored)?["indexed_blocks"] as? Int == count,
                "the router's index holds every block the store does, from its events")

        // The same request again hits the worker's cache: nothing new to publish.
        _ = try await cluster.complete(body(chat(question), maxTokens: 8))
        try await Task.sleep(for: .milliseconds(500))
        let after = try await cluster.status()
        #expect(cluster.worker("kvstore-0", in: after)?["kv_blocks_used"] as? Int == count, "no block was stored twice")
    }

    @Test func aPromptEvictedFromTheWorkerComesBackFromTheStoreWithTheSameAnswer() async throws {
        let model = try TestModel.path()
        let cluster = ClusterHarness(model: model)
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let (_, storeAddress) = try cluster.startStore("kvstore-0", dramMiB: 128)
        // A pool of 48 blocks: three prompts of ~25 blocks cannot all stay.
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", storeAddress, "--kv-blocks", "48"])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])

        func prompt(_ topic: String) -> [ChatMessage] {
            let text = (0..<30).map { "Fact \($0) about \(topic): it is worth a sentence of its own." }.joined(separator: " ")
            return [ChatMessage(role: "system", content: text), ChatMessage(role: "user", content: "Summarize the facts about \(topic).")]
        }
        let first = try await cluster.complete(body(prompt("rivers"), maxTokens: 12))
        #expect(first.status == 200, "\(first.raw)")
        for topic in ["mountains", "deserts"] {
            _ = try await cluster.complete(body(prompt(topic), maxTokens: 12))
        }
        let published = try await cluster.waitForStatus("the blocks published") { status in
            (cluster.worker("kvstore-0", in: status)?["kv_blocks_used"] as? Int ?? 0) >= 48
        }
        #expect(cluster.worker("mixed-0", in: published)?["kv_blocks_publish_dropped"] as? Int == 0)

        let again = try await cluster.complete(body(prompt("rivers"), maxTokens: 12))
        #expect(again.content == first.content, "KV fetched from the store gives the answer computed KV gave")
        let status = try await cluster.waitForStatus("the worker's fetch count") { status in
            (cluster.worker("mixed-0", in: status)?["kv_blocks_fetched"] as? Int ?? 0) > 0
        }
        let fetched = cluster.worker("mixed-0", in: status)?["kv_blocks_fetched"] as? Int ?? 0
        #expect(fetched > 0 && fetched <= 48, "\(fetched) blocks fetched")
    }

    @Test func aStoreNodeKilledUnderLoadFailsNoRequest() async throws {
        let model = try TestModel.path()
        let cluster = ClusterHarness(model: model)
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let (store, storeAddress) = try cluster.startStore("kvstore-0", dramMiB: 64)
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", storeAddress, "--kv-blocks", "64"])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])

        // Eight requests over four topics, so some fetch and all publish,
        // with the store killed while they run.
        let requests = (0..<8).map { i in
            Task { try await cluster.complete(body(chat("Tell me about topic number \(i % 4)."), maxTokens: 16)) }
        }
        try await Task.sleep(for: .milliseconds(300))
        store.crash()
        var answers: [ClusterHarness.Completion] = []
        for request in requests { answers.append(try await request.value) }
        #expect(answers.allSatisfy { $0.status == 200 && $0.content?.isEmpty == false }, "\(answers.map(\.raw))")
        // After the store is gone, requests are still served, computing
        // what they would have fetched, and the router forgets its blocks.
        let after = try await cluster.complete(body(chat("Tell me about topic number 0."), maxTokens: 16))
        #expect(after.status == 200, "\(after.raw)")
        _ = try await cluster.waitForStatus("kvstore-0 gone from the router") { cluster.worker("kvstore-0", in: $0)?["healthy"] as? Bool != true }
        let route = try await cluster.complete(body(chat("Tell me about topic number 1."), maxTokens: 16))
        #expect(route.status == 200, "\(route.raw)")
    }
}

/// The test process's side: a pool of blocks registered for the store to
/// push into, served on loopback like a worker's.
struct StorePeer {
    let transfer: TransferNode
    let pool: RegisteredRegion
    let server: RPCServer
    let serving: Task<Void, Error>
    let bytesPerBlock: Int

    init(blocks: Int, layout: StoredLayout) async throws {
        bytesPerBlock = layout.payloadBytes
        let target = TransferTarget(regions: RegionTable(owner: "e2e-\(UInt32.random(in: 0...UInt32.max))", epoch: 1))
        transfer = TransferNode(target: target, receivers: [SharedMemoryReceiver(target: target), TCPReceiver(target: target)],
                                configuration: RPCConfiguration(nodeName: "e2e"))
        pool = try transfer.register(length: blocks * layout.payloadBytes, over: [.shm, .tcp])
        var services = RPCServices()
        transfer.serve(into: &services)
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: transfer.configuration)
        self.server = server
        serving = Task { try await server.run() }
    }

    func target(blocks: [Int], immediate: UInt32) throws -> Loom_Kvstore_GetTarget {
        try Loom_Kvstore_GetTarget(pool, blocks: blocks, bytesPerBlock: bytesPerBlock, immediate: immediate, transferAt: server.localAddress)
    }

    func close() {
        serving.cancel()
        transfer.close()
    }
}
