import AsyncHTTPClient
import Foundation
import NIOCore

/// Where and how to send chat requests.
public struct ServerTarget: Sendable {
    /// Base URL without the `/v1` part, e.g. `http://127.0.0.1:8000`.
    public var baseURL: String
    public var apiKey: String?

    public init(baseURL: String, apiKey: String?) {
        // A trailing slash would give `//v1/...`, which some routers reject.
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.apiKey = apiKey
    }

    func request(_ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        return request
    }
}

/// Sends one streaming chat completion and times its chunks as they arrive.
public struct ChatStreamClient: Sendable {
    public let http: HTTPClient
    public let target: ServerTarget
    public let model: String
    public let maxTokens: Int
    public let timeout: Duration

    public init(http: HTTPClient, target: ServerTarget, model: String, maxTokens: Int, timeout: Duration) {
        self.http = http
        self.target = target
        self.model = model
        self.maxTokens = maxTokens
        self.timeout = timeout
    }

    /// Never throws and never outlives `timeout`: a slow or broken server
    /// turns into a failed outcome, not a stuck run.
    public func send(_ prompt: BenchPrompt) async -> RequestOutcome {
        await withTaskGroup(of: RequestOutcome?.self) { group in
            group.addTask { await self.stream(prompt) }
            group.addTask {
                try? await Task.sleep(for: self.timeout)
                return nil
            }
            // Cancelling the loser stops the sleep, or closes the request's
            // connection through AsyncHTTPClient's cancellation handler.
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? timedOut
        }
    }

    private func stream(_ prompt: BenchPrompt) async -> RequestOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        func elapsed() -> Double { (clock.now - start).seconds }
        do {
            let response = try await http.execute(try makeRequest(prompt), timeout: .seconds(Int64(timeout.seconds) + 1))
            guard response.status == .ok else {
                let body = try await response.body.collect(upTo: 4096)
                return .failed("HTTP \(response.status.code): \(errorMessage(String(buffer: body)))")
            }
            var parser = SSEParser()
            var recorder = StreamRecorder()
            for try await buffer in response.body {
                // Events that came in one read arrived together; one
                // timestamp for all of them is the truth, not a shortcut.
                let now = elapsed()
                for event in parser.feed(buffer.readableBytesView) {
                    for item in StreamEvent.decode(event) { recorder.record(item, at: now) }
                }
            }
            let end = elapsed()
            if let last = parser.finish() {
                for item in StreamEvent.decode(last) { recorder.record(item, at: end) }
            }
            return recorder.finish(at: end)
        } catch let error as HTTPClientError where error == .readTimeout || error == .deadlineExceeded {
            // The client's own timeouts are set from `timeout`; when a busy
            // machine lets them fire first, the cause is still the same.
            return timedOut
        } catch is CancellationError {
            return .failed("cancelled")
        } catch {
            return .failed(String(describing: error))
        }
    }

    private var timedOut: RequestOutcome {
        .failed("timed out after \(String(format: "%g", timeout.seconds)) s")
    }

    private func makeRequest(_ prompt: BenchPrompt) throws -> HTTPClientRequest {
        var request = target.request("/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        // A fresh connection per request: reusing a kept-alive one races
        // with servers that close it after a stream (llama-server's HTTP
        // library does, now and then), and the request then fails with "I/O on
        // closed channel" though the server was fine. A loopback connect
        // costs far less than the TTFT it is counted in.
        request.headers.add(name: "Connection", value: "close")
        let body = ChatRequestBody(model: model, messages: prompt.messages, max_tokens: maxTokens)
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        return request
    }
}

/// The `error.message` of an OpenAI-style error body, or the body itself.
func errorMessage(_ body: String) -> String {
    struct ErrorEnvelope: Decodable {
        struct Inner: Decodable { var message: String? }
        var error: Inner?
    }
    if let envelope = try? JSONDecoder().decode(ErrorEnvelope.self, from: Data(body.utf8)),
       let message = envelope.error?.message {
        return message
    }
    return String(body.prefix(200))
}
