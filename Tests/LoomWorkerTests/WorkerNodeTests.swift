import Foundation
import Synchronization
import LoomEngine
import LoomModel
import LoomTesting
import LoomTransfer
import LoomProtocol
import LoomWire
import LoomWorker
import Testing

/// A worker on a tiny seeded model, with its own RPC server on loopback.
final class RunningWorker: Sendable {
    static let modelPath: String = (try? TinyModel().write(to: temporaryPath("worker-tiny.gguf"))) ?? ""
    /// Every worker a test starts is a new incarnation, as a new process
    /// would be, even when suites running side by side reuse its name.
    static let incarnation = Atomic<UInt64>(0)

    let node: WorkerNode
    let server: RPCServer
    let task: Task<Void, Error>

    init(_ name: String, role: WorkerRole, epoch: UInt64, lease: Duration = .seconds(30), fabric: String? = nil) async throws {
        let model = try LanguageModel(path: Self.modelPath, threads: 1, maxBatchTokens: 64)
        let scheduler = SchedulerConfiguration(
            blockCount: 64, tokenBudget: 64, maxRunning: 4, contextLength: model.transformer.config.contextLength,
            hasher: BlockHasher(modelName: "tiny"))
        node = try WorkerNode(model: model, scheduler: scheduler,
                              configuration: WorkerConfiguration(name: name, role: role, host: "127.0.0.1", port: 0, lease: lease, fabricProvider: fabric),
                              epoch: epoch &+ Self.incarnation.add(1, ordering: .relaxed).newValue << 32)
        server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: node.services, configuration: node.rpcConfiguration)
        guard case .tcp(_, let port) = server.localAddress else { preconditionFailure("bound a TCP address") }
        node.advertise(port: port)
        // The server and the lease sweeper, as WorkerService runs them.
        task = Task { [server, node] in
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.run() }
                group.addTask { await node.sweepLeases(every: .milliseconds(20)) }
            }
        }
    }

    var address: RPCAddress { .tcp(host: "127.0.0.1", port: node.port) }

    func stop() async {
        task.cancel()
        _ = await task.result
        node.shutdown()
    }

    func call<T: Sendable>(_ body: (RPCConnection) async throws -> T) async throws -> T {
        try await RPCConnection.withConnection(to: address, configuration: RPCConfiguration(nodeName: "test"), body)
    }

    /// Waits (bounded) until the engine's state satisfies `condition`.
    func waitForEngine(_ condition: (EngineSnapshot) -> Bool) async throws {
        for _ in 0..<500 where !condition(node.engine.snapshot) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition(node.engine.snapshot), "engine state: \(node.engine.snapshot)")
    }
}

func spec(_ prompt: [TokenID], maxTokens: Int) -> Loom_Cluster_GenerationSpec {
    Loom_Cluster_GenerationSpec(GenerationRequest(prompt: prompt, maxTokens: maxTokens), jsonMode: false)
}

func prefillRequest(_ spec: Loom_Cluster_GenerationSpec, _ target: Loom_Cluster_Reservation) -> Loom_Cluster_PrefillRequest {
    var request = Loom_Cluster_PrefillRequest()
    request.spec = spec
    request.target = target
    return request
}

/// The KV backends a worker pair can use: nil is shm/tcp (picked by host),
/// the other a libfabric provider every worker is given.
let kvBackends: [String?] = [nil, "tcp;ofi_rxm"]

@Suite(.serialized) struct WorkerNodeTests {
    let prompt: [TokenID] = (0..<37).map { TokenID(3 + ($0 * 7) % 50) }

    @Test(arguments: kvBackends)
    func aPrefilledReservationDecodesLikeOneProcess(fabric: String?) async throws {
        let prefill = try await RunningWorker("prefill-0", role: .prefill, epoch: 1, fabric: fabric)
        let decode = try await RunningWorker("decode-0", role: .decode, epoch: 2, fabric: fabric)
        let request = spec(prompt, maxTokens: 12)
        let reservation = try await decode.call { try await $0.unary(ClusterRPC.reserve, request).0 }
        #expect(reservation.blocks.count == 3 && reservation.firstBlock == 0)
        if fabric != nil {
            // The writer gets a registration of its own, never the pool.
            #expect(try RegionDescriptor(serialized: [UInt8](reservation.region)).backendKeys[FabricTarget.backendKey] != nil)
            #expect(reservation.blocks == [0, 1, 2])
        }
        let response = try await prefill.call { try await $0.unary(ClusterRPC.prefill, prefillRequest(request, reservation)).0 }
        #expect(response.hasFirst && response.writes == 1 && response.computedTokens == 37)
        let sent = prefill.node.load
        #expect(fabric == nil ? sent.shmWrites + sent.tcpWrites == 1 && sent.fabricWrites == 0 : sent.fabricWrites == 1,
                "fabric \(sent.fabricWrites), shm \(sent.shmWrites), tcp \(sent.tcpWrites)")

        var attach = Loom_Cluster_AttachRequest()
        attach.requestID = reservation.requestID
        attach.first = response.first
        attach.expectedWrites = response.writes
        attach.timeoutMs = 5000
        let tokens: [TokenID] = try await decode.call { connection in
            try await connection.serverStreaming(method: ClusterRPC.attach.id, try RPCMessage(attach)) { items in
                var tokens: [TokenID] = []
                for try await item in items {
                    if case .token(let token)? = try item.decode(Loom_Cluster_TokenEvent.self).event { tokens.append(token.id) }
                }
                return tokens
            }
        }
        let model = try LanguageModel(path: RunningWorker.modelPath, threads: 1)
        let expected = try Generator(model: model.transformer).generate(prompt: prompt, maxTokens: 12, stopTokens: []).tokens
        #expect(tokens == expected, "the decode worker continued from KV it never computed")
        #expect(decode.node.engine.snapshot.stats.remotePrefilledTokens == 37)
        #expect(decode.node.engine.snapshot.stats.computedTokens == 11, "only generated tokens were fed to the decode worker's model")
        await prefill.stop()
        await decode.stop()
    }

    @Test(arguments: kvBackends)
    func aWriteAfterTheLeaseRanOutIsRefusedAndTheBlocksCameBack(fabric: String?) async throws {
        let prefill = try await RunningWorker("prefill-0", role: .prefill, epoch: 1, fabric: fabric)
        // Long enough that the held blocks are seen on a loaded machine (the
        // engine publishes its snapshot just after the reply goes out).
        let decode = try await RunningWorker("decode-0", role: .decode, epoch: 2, lease: .seconds(2), fabric: fabric)
        let request = spec(prompt, maxTokens: 4)
        let reservation = try await decode.call { try await $0.unary(ClusterRPC.reserve, request).0 }
        try await decode.waitForEngine { $0.usedBlocks == 3 && $0.reserved == 1 }
        try await decode.waitForEngine { $0.reserved == 0 && $0.usedBlocks == 0 }
        let refused = await #expect(throws: WireError.self) {
            try await prefill.call { try await $0.unary(ClusterRPC.prefill, prefillRequest(request, reservation)).0 }
        }
        // Over fabric the target cannot refuse a write; its key is revoked
        // instead, and the provider fails the write at the writer.
        let expected: TransferError.Code = fabric == nil ? .refused : .ackLost
        #expect(refused?.code.rawValue == 1000 + expected.rawValue, "\(String(describing: refused))")
        await prefill.stop()
        await decode.stop()
    }

    @Test func aFabricReservationNeedsAFabricWriter() async throws {
        let prefill = try await RunningWorker("prefill-0", role: .prefill, epoch: 1)
        let decode = try await RunningWorker("decode-0", role: .decode, epoch: 2, fabric: "tcp;ofi_rxm")
        let request = spec(prompt, maxTokens: 4)
        let reservation = try await decode.call { try await $0.unary(ClusterRPC.reserve, request).0 }
        let refused = await #expect(throws: WireError.self) {
            try await prefill.call { try await $0.unary(ClusterRPC.prefill, prefillRequest(request, reservation)).0 }
        }
        #expect(refused?.message.contains("fabric_provider") == true, "\(String(describing: refused))")
        await prefill.stop()
        await decode.stop()
    }

    @Test(arguments: kvBackends)
    func aDescriptorFromBeforeARestartIsRefused(fabric: String?) async throws {
        let prefill = try await RunningWorker("prefill-0", role: .prefill, epoch: 1, fabric: fabric)
        let before = try await RunningWorker("decode-0", role: .decode, epoch: 2, fabric: fabric)
        let request = spec(prompt, maxTokens: 4)
        var reservation = try await before.call { try await $0.unary(ClusterRPC.reserve, request).0 }
        await before.stop()
        // The same worker, restarted: a new incarnation with a new epoch.
        let after = try await RunningWorker("decode-0", role: .decode, epoch: 3, fabric: fabric)
        reservation.transferPort = UInt32(after.node.port)
        let refused = await #expect(throws: WireError.self) {
            try await prefill.call { try await $0.unary(ClusterRPC.prefill, prefillRequest(request, reservation)).0 }
        }
        #expect(refused?.code.rawValue == 1000 + TransferError.Code.staleDescriptor.rawValue, "\(String(describing: refused))")
        #expect(refused?.message.contains("restarted") == true)
        #expect(after.node.engine.snapshot.usedBlocks == 0, "nothing was written into the new incarnation's pool")
        await prefill.stop()
        await after.stop()
    }

    @Test func aDrainingWorkerRefusesNewRequestsButFinishesTheOnesUnderWay() async throws {
        let prefill = try await RunningWorker("prefill-0", role: .prefill, epoch: 1)
        let decode = try await RunningWorker("decode-0", role: .decode, epoch: 2)
        let request = spec(prompt, maxTokens: 6)
        let reservation = try await decode.call { try await $0.unary(ClusterRPC.reserve, request).0 }
        let response = try await prefill.call { try await $0.unary(ClusterRPC.prefill, prefillRequest(request, reservation)).0 }
        decode.node.beginDraining()
        #expect(!decode.node.isIdle, "a reservation still waits for its attach")
        let refusedReserve = await #expect(throws: WireError.self) {
            try await decode.call { try await $0.unary(ClusterRPC.reserve, request).0 }
        }
        let refusedGenerate = await #expect(throws: WireError.self) {
            try await decode.call { connection in
                try await connection.serverStreaming(method: ClusterRPC.generate.id, try RPCMessage(request)) { items in
                    for try await _ in items {}
                }
            }
        }
        for refused in [refusedReserve, refusedGenerate] {
            #expect(refused?.schedulerError?.code == .unavailable, "\(String(describing: refused))")
        }
        var attach = Loom_Cluster_AttachRequest()
        attach.requestID = reservation.requestID
        attach.first = response.first
        attach.expectedWrites = response.writes
        attach.timeoutMs = 5000
        let tokens: Int = try await decode.call { connection in
            try await connection.serverStreaming(method: ClusterRPC.attach.id, try RPCMessage(attach)) { items in
                var count = 0
                for try await item in items {
                    if case .token? = try item.decode(Loom_Cluster_TokenEvent.self).event { count += 1 }
                }
                return count
            }
        }
        #expect(tokens == 6, "the request under way got every token it asked for")
        for _ in 0..<200 where !decode.node.isIdle { try await Task.sleep(for: .milliseconds(10)) }
        #expect(decode.node.isIdle)
        await prefill.stop()
        await decode.stop()
    }
}

/// Seeded sampling continues across workers: the draws a prefill worker (or
/// a failed decode worker) made are skipped, not repeated.
@Suite(.serialized) struct SeededAcrossWorkersTests {
    let prompt: [TokenID] = (0..<37).map { TokenID(3 + ($0 * 7) % 50) }
    let sampling = SamplingParameters(temperature: 0.9, topK: 20, seed: 42)

    func tokens(_ stream: AsyncThrowingStream<GenerationOutput, Error>) async throws -> [TokenID] {
        var tokens: [TokenID] = []
        for try await output in stream { if case .token(let token, _, _) = output { tokens.append(token) } }
        return tokens
    }

    @Test func aRemotelyPrefilledSeededRequestSamplesWhatOneEngineWould() async throws {
        let prefill = try await RunningWorker("prefill-0", role: .prefill, epoch: 1)
        let decode = try await RunningWorker("decode-0", role: .decode, epoch: 2)
        let request = GenerationRequest(prompt: prompt, maxTokens: 10, sampling: sampling)
        let reference = try await tokens(decode.node.engine.generate(request))
        let spec = Loom_Cluster_GenerationSpec(request, jsonMode: false)
        let reservation = try await decode.call { try await $0.unary(ClusterRPC.reserve, spec).0 }
        let response = try await prefill.call { try await $0.unary(ClusterRPC.prefill, prefillRequest(spec, reservation)).0 }
        guard case .token(let first, let logprob, let top) = response.first.output else { Issue.record("no first token"); return }
        let rest = try await tokens(decode.node.engine.attach(RequestID(reservation.requestID), firstToken: first, logprob: logprob, top: top))
        #expect(rest == reference, "P/D: \(rest) vs one engine: \(reference)")
        await prefill.stop()
        await decode.stop()
    }

    @Test func aResumedRequestContinuesTheSameSample() async throws {
        let worker = try await RunningWorker("mixed-0", role: .mixed, epoch: 1)
        let reference = try await tokens(worker.node.engine.generate(GenerationRequest(prompt: prompt, maxTokens: 10, sampling: sampling)))
        var resumed = GenerationRequest(prompt: prompt + reference.prefix(4), maxTokens: 6, sampling: sampling)
        resumed.resumedTokens = 4
        #expect(try await tokens(worker.node.engine.generate(resumed)) == Array(reference.dropFirst(4)))
        await worker.stop()
    }
}
