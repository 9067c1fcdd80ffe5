import Foundation
import Hummingbird
import HummingbirdTesting
import LoomBench
import Testing

/// Holds the streams of model "slow" until the test opens it: a server that
/// never answers, for as long as the test needs one. The server's graceful
/// shutdown waits for those handlers, so every test must open it in the end.
private actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}

/// A stand-in OpenAI server on a real loopback socket: it streams a few
/// chunks in separate writes, answers 429 to model "busy" and stalls model
/// "slow" behind a gate, so the client's streaming, error and timeout paths
/// run over TCP without a model.
private enum FakeServer {
    struct Body: Decodable {
        struct StreamOptions: Decodable { var include_usage: Bool }
        var model: String
        var stream: Bool
        var stream_options: StreamOptions
        var max_tokens: Int
        var ignore_eos: Bool
    }

    static func application(gate: Gate) -> some ApplicationProtocol {
        let router = Router()
        router.get("/v1/models") { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"id":"fake"}]}"#)))
        }
        router.post("/v1/chat/completions") { request, context in
            let body = try await request.decode(as: Body.self, context: context)
            guard body.stream, body.stream_options.include_usage, body.ignore_eos else {
                throw HTTPError(.badRequest, message: "the benchmark must ask for a stream with usage")
            }
            if body.model == "busy" {
                return Response(status: .tooManyRequests, body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"queue full"}}"#)))
            }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: #"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"# + "\n\n"))
                    if body.model == "slow" { await gate.wait() }
                    for word in ["one", " two", " three"] {
                        try await Task.sleep(for: .milliseconds(20))
                        try await writer.write(ByteBuffer(string: "data: {\"choices\":[{\"delta\":{\"content\":\"\(word)\"}}]}\n\n"))
                    }
                    try await writer.write(ByteBuffer(string: #"data: {"choices":[],"usage":{"prompt_tokens":25,"completion_tokens":3}}"# + "\n\ndata: [DONE]\n\n"))
                    try await writer.finish(nil)
                })
        }
        return Application(router: router)
    }

    static func withServer(
        gate: Gate = Gate(), _ body: @escaping @Sendable (ServerTarget) async throws -> Void
    ) async throws {
        try await application(gate: gate).test(.live) { client in
            let port = try #require(client.port)
            // Opened even when `body` throws, or shutdown would wait forever.
            do {
                try await body(ServerTarget(baseURL: "http://127.0.0.1:\(port)/", apiKey: "k"))
            } catch {
                await gate.open()
                throw error
            }
            await gate.open()
        }
    }
}

@Suite struct FakeServerTests {
    // Generous by default: the full test suite can starve this one of
    // threads for tens of seconds, and only the timeout test is about time.
    private func options(_ target: ServerTarget, model: String?, timeout: Duration = .seconds(120)) -> ServeBenchmarkOptions {
        ServeBenchmarkOptions(
            target: target, model: model, workload: .plain, requests: 6, shape: .closed(concurrency: 3),
            maxTokens: 3, seed: 1, timeout: timeout)
    }

    @Test func streamsAreTimedAndCounted() async throws {
        try await FakeServer.withServer { target in
            let report = try await ServeBenchmark.run(options(target, model: nil), progressInterval: .seconds(60)) { _ in }
            #expect(report.model == "fake")
            #expect(report.failures == 0, "\(report.failure_reasons)")
            #expect(report.output_tokens == 18)
            #expect(report.prompt_tokens_mean == 25)
            // Three chunks 20 ms apart: TTFT and each gap are at least that.
            let ttft = try #require(report.ttft_ms)
            let itl = try #require(report.itl_ms)
            #expect(ttft.p50 >= 15)
            #expect(itl.p50 >= 15)
            #expect(try #require(report.e2e_ms).p50 >= ttft.p50 + 2 * 15)
        }
    }

    @Test func httpErrorsBecomeFailuresWithTheServersMessage() async throws {
        try await FakeServer.withServer { target in
            let report = try await ServeBenchmark.run(options(target, model: "busy"), progressInterval: .seconds(60)) { _ in }
            #expect(report.failures == 6)
            #expect(report.failure_reasons == ["HTTP 429: queue full"])
            #expect(report.ttft_ms == nil)
        }
    }

    /// The server never answers while the run is in progress, so the run
    /// can only return through its timeouts. Should a change make requests
    /// wait for the server, the gate opens after 60 s and the elapsed time
    /// shows it, instead of the test hanging.
    @Test func aStuckStreamTimesOutInsteadOfHanging() async throws {
        let gate = Gate()
        let fallback = Task {
            try? await Task.sleep(for: .seconds(60))
            await gate.open()
        }
        defer { fallback.cancel() }
        try await FakeServer.withServer(gate: gate) { target in
            let started = ContinuousClock.now
            let report = try await ServeBenchmark.run(
                options(target, model: "slow", timeout: .milliseconds(300)), progressInterval: .seconds(60)) { _ in }
            #expect(report.failures == 6)
            #expect(report.failure_reasons == ["timed out after 0.3 s"])
            #expect(ContinuousClock.now - started < .seconds(60))
        }
    }
}
