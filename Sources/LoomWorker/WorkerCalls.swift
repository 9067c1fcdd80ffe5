import LoomEngine
import LoomProtocol
import LoomTransfer
import LoomWire
import Synchronization

/// What every service of a worker shares about the calls it serves: how
/// many are under way, whether new ones are still taken (not while the
/// worker drains), and the counters its heartbeat reports.
final class WorkerCalls: Sendable {
    let worker: String
    let kvBlocksSent = Atomic<UInt64>(0)
    let kvBlocksReceived = Atomic<UInt64>(0)
    let shmWrites = Atomic<UInt64>(0)
    let tcpWrites = Atomic<UInt64>(0)
    let fabricWrites = Atomic<UInt64>(0)
    private let draining = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)

    init(worker: String) {
        self.worker = worker
    }

    func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }

    var isDraining: Bool { draining.load(ordering: .relaxed) }

    var activeCount: Int { active.load(ordering: .relaxed) }

    /// Runs one call, counted while it runs. A call that starts new work
    /// (`new`) is refused as `unavailable` while draining, which the router
    /// takes as "try another worker"; one that finishes work under way (an
    /// attach) is served to the end.
    func serving<T: Sendable>(new: Bool, _ body: () async throws -> T) async throws -> T {
        active.add(1, ordering: .relaxed)
        defer { active.subtract(1, ordering: .relaxed) }
        if new && isDraining {
            throw WireError(SchedulerError(.unavailable, "worker \(worker) is shutting down and takes no new request; send it to another worker"))
        }
        return try await body()
    }

    func countWrite(over backend: TransferBackend, blocks: Int) {
        switch backend {
        case .shm: shmWrites.add(1, ordering: .relaxed)
        case .tcp: tcpWrites.add(1, ordering: .relaxed)
        case .fabric: fabricWrites.add(1, ordering: .relaxed)
        case .verbs: break
        }
        kvBlocksSent.add(UInt64(blocks), ordering: .relaxed)
    }

    func load(_ snapshot: EngineSnapshot) -> Loom_Cluster_Load {
        var load = Loom_Cluster_Load(snapshot, kvBlocksSent: kvBlocksSent.load(ordering: .relaxed),
                                     kvBlocksReceived: kvBlocksReceived.load(ordering: .relaxed))
        load.shmWrites = shmWrites.load(ordering: .relaxed)
        load.tcpWrites = tcpWrites.load(ordering: .relaxed)
        load.fabricWrites = fabricWrites.load(ordering: .relaxed)
        return load
    }
}

extension Loom_Cluster_GenerationSpec {
    /// The engine request this spec asks for; JSON mode is applied here,
    /// on the worker, with its own tokenizer's table.
    func request(json: JSONTokenTable) -> GenerationRequest {
        var request = self.request
        if jsonMode { request.constraint = JSONConstraint(json) }
        return request
    }
}

extension RPCStreamWriter {
    /// Forwards engine outputs as stream items. Engine refusals become
    /// errors the router can map back to HTTP statuses.
    func send(_ outputs: AsyncThrowingStream<GenerationOutput, Error>) async throws {
        do {
            for try await output in outputs {
                try await send(Loom_Cluster_TokenEvent(output))
            }
        } catch let error as SchedulerError {
            throw WireError(error)
        }
    }
}
