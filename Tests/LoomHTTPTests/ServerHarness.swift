import Foundation
import Hummingbird
import HummingbirdTesting
import LoomEngine
import LoomHTTP
import LoomModel
import LoomTesting
import Testing

/// A tiny model served through the real router, driven in memory by
/// HummingbirdTesting; the engine is shut down when the test body returns.
struct ServerHarness {
    var maxRunning = 4
    var maxWaiting = 64
    var server = OpenAIServer.Configuration()

    static let modelPath: String = {
        // One file per test process: every test reads the same seeded weights.
        (try? TinyModel().write(to: temporaryPath("http-tiny.gguf"))) ?? ""
    }()

    func run<T: Sendable>(_ body: @Sendable (any TestClientProtocol, ServedModel) async throws -> T) async throws -> T {
        let model = try LanguageModel(path: Self.modelPath, threads: 1, maxBatchTokens: 64)
        let engine = try InferenceEngine(model: model.transformer, configuration: SchedulerConfiguration(
            blockCount: 96, tokenBudget: 32, maxRunning: maxRunning, maxWaiting: maxWaiting,
            contextLength: model.transformer.config.contextLength))
        defer { engine.shutdown() }
        let served = ServedModel(model: model, engine: engine, name: "tiny")
        let app = Application(router: OpenAIServer(model: served, configuration: server).router())
        return try await app.test(.router) { client in try await body(client, served) }
    }
}

/// A parsed JSON response, for reading fields without a type per shape.
struct JSONValue: @unchecked Sendable {
    // `@unchecked`: wraps the immutable result of JSONSerialization
    // (NSDictionary/NSArray/NSString/NSNumber), which is never mutated.
    let raw: Any

    init(_ raw: Any) { self.raw = raw }
    init(_ buffer: ByteBuffer) throws { raw = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed]) }
    init(_ text: String) throws { raw = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) }

    subscript(key: String) -> JSONValue { JSONValue((raw as? [String: Any])?[key] ?? NSNull()) }
    subscript(index: Int) -> JSONValue {
        guard let array = raw as? [Any], array.indices.contains(index) else { return JSONValue(NSNull()) }
        return JSONValue(array[index])
    }
    var string: String? { raw as? String }
    var int: Int? { (raw as? NSNumber)?.intValue }
    var double: Double? { (raw as? NSNumber)?.doubleValue }
    var array: [JSONValue] { (raw as? [Any])?.map(JSONValue.init) ?? [] }
    var isNull: Bool { raw is NSNull }
    var keys: Set<String> { Set((raw as? [String: Any])?.keys.map { $0 } ?? []) }
}

extension TestClientProtocol {
    func post(_ uri: String, _ body: String, headers: HTTPFields = [.contentType: "application/json"]) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }
}

/// The data payloads of an SSE body, checking OpenAI's framing on the way:
/// every event is exactly `data: <payload>\n\n` and the last is `[DONE]`.
func sseEvents(_ body: ByteBuffer) throws -> [String] {
    let text = String(buffer: body)
    #expect(text.hasSuffix("data: [DONE]\n\n"), "the stream must end with data: [DONE]")
    let parts = text.components(separatedBy: "\n\n")
    #expect(parts.last == "", "every event ends with a blank line")
    var events: [String] = []
    for part in parts.dropLast() {
        #expect(part.hasPrefix("data: "), "event without a data: prefix: \(part)")
        #expect(!part.contains("\n") && !part.contains("\r"), "an event is one line: \(part)")
        events.append(String(part.dropFirst("data: ".count)))
    }
    #expect(events.last == "[DONE]")
    #expect(events.filter { $0 == "[DONE]" }.count == 1)
    return events
}
