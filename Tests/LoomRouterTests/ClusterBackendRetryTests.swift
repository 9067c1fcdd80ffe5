import Logging
import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomRouter
import LoomTesting
import LoomWire
import Testing

/// The router's retries wait on the clock it is given: with a manual one,
/// a failed attempt is followed by nothing until time moves, then by the
/// retry, and with no worker left the client gets a 503 naming the last.
@Suite struct ClusterBackendRetryTests {
    @Test func aRetryWaitsOnTheInjectedClockThenTheRequestFailsAsUnavailable() async throws {
        let state = ClusterState(settings: .init(disaggregationThreshold: 100_000, hasher: BlockHasher(modelName: "test")))
        var request = Loom_Cluster_RegisterRequest()
        request.name = "decode-0"
        request.role = WorkerRole.decode.wire
        // Nothing listens on port 1: every call to this worker fails at once.
        request.rpcHost = "127.0.0.1"
        request.rpcPort = 1
        request.epoch = 1
        request.blockCount = 64
        request.blockSize = 16
        _ = try state.register(request)
        let clock = ManualClock()
        var rpc = RPCConfiguration(nodeName: "router")
        rpc.keepaliveInterval = nil
        let backend = ClusterBackend(state: state, rpc: rpc, logger: Logger(label: "test"), maxAttempts: 3, clock: clock)
        defer { backend.shutdown() }
        let outcome = Task { () -> Error? in
            do {
                for try await _ in backend.generate(GenerationRequest(prompt: [1, 2, 3], maxTokens: 4)) {}
                return nil
            } catch {
                return error
            }
        }
        for _ in 0..<500 where clock.sleeping == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(clock.sleeping == 1, "the first attempt failed and the retry is waiting on the clock")
        clock.advance(by: .milliseconds(9))
        #expect(clock.sleeping == 1, "not before its backoff has passed")
        clock.advance(by: .milliseconds(1))
        let error = await outcome.value as? SchedulerError
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        #expect(error?.message.contains("decode-0") == true, "\(String(describing: error))")
        #expect(state.status.decisions["retry"] == 1)
    }
}
