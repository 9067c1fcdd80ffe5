import Foundation
import Hummingbird
import HummingbirdTesting
import LoomEngine
import LoomHTTP
import LoomModel
import LoomTesting
import Synchronization
import Testing

/// A backend that keeps every prompt it is sent and generates nothing, so a
/// test sees exactly the ids the HTTP layer tokenized.
final class RecordingBackend: GenerationBackend {
    let prompts = Mutex<[[TokenID]]>([])

    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationOutput, Error> {
        prompts.withLock { $0.append(request.prompt) }
        let usage = RequestUsage(promptTokens: request.prompt.count, completionTokens: 0, cachedPromptTokens: 0)
        return AsyncThrowingStream { $0.yield(.finished(.length, usage)); $0.finish() }
    }

    var snapshot: EngineSnapshot { EngineSnapshot() }
    var last: [TokenID]? { prompts.withLock { $0.last } }
}

/// A raw prompt on /v1/completions is tokenized by the shared rule: control
/// tokens parsed unless `parse_special: false`, BOS as the model asks.
@Suite struct PromptTokenizationTests {
    let chatML = "<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n"  // JSON-escaped
    let imStart = TokenID(ByteLevelVocabulary.imEnd - 1), imEnd = TokenID(ByteLevelVocabulary.imEnd)
    let bos = TokenID(ByteLevelVocabulary.endOfText)

    /// The tiny model's byte tokens have ids equal to their byte values.
    func bytes(_ text: String) -> [TokenID] { text.utf8.map { TokenID($0) } }

    var parsed: [TokenID] {
        [imStart] + bytes("user\nhi") + [imEnd] + bytes("\n") + [imStart] + bytes("assistant\n")
    }

    var plain: [TokenID] { bytes("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") }

    /// Served the way `loom router` serves: tokenizer and template read from
    /// the GGUF, generation elsewhere (here, a recorder).
    func runAsTheRouter(addBOS: Bool, _ body: @Sendable (any TestClientProtocol, RecordingBackend) async throws -> Void) async throws {
        let path = ServerHarness.modelPath
        let file = try GGUFFile(path: path)
        var vocabulary = try Vocabulary(metadata: file.metadata, path: path)
        vocabulary.addBOS = addBOS
        let backend = RecordingBackend()
        let served = ServedModel(
            path: path, tokenizer: try Tokenizers.make(vocabulary), chatTemplate: nil,
            contextLength: try ModelConfig(gguf: file).contextLength, backend: backend, name: "tiny")
        let app = Application(router: OpenAIServer(model: served).router())
        try await app.test(.router) { client in try await body(client, backend) }
    }

    @Test func aRawChatMLPromptReachesTheBackendAsControlTokens() async throws {
        try await runAsTheRouter(addBOS: false) { client, backend in
            let response = try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 4}"#)
            #expect(response.status == .ok)
            #expect(backend.last == parsed)
        }
    }

    @Test func parseSpecialFalseKeepsControlTokenTextPlain() async throws {
        try await runAsTheRouter(addBOS: false) { client, backend in
            let response = try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 4, "parse_special": false}"#)
            #expect(response.status == .ok)
            #expect(backend.last == plain)
            _ = try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 4, "parse_special": true}"#)
            #expect(backend.last == parsed)
        }
    }

    @Test func bosIsAddedWhenTheModelAsksEitherWay() async throws {
        try await runAsTheRouter(addBOS: true) { client, backend in
            _ = try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 4}"#)
            #expect(backend.last == [bos] + parsed)
            _ = try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 4, "parse_special": false}"#)
            #expect(backend.last == [bos] + plain)
        }
    }

    /// Token-id prompts are not text: the field changes nothing about them.
    @Test func tokenPromptsAreSentAsGiven() async throws {
        try await runAsTheRouter(addBOS: true) { client, backend in
            _ = try await client.post("/v1/completions", #"{"prompt": [\#(imStart), 104, 105], "max_tokens": 4, "parse_special": false}"#)
            #expect(backend.last == [imStart, 104, 105])
        }
    }

    @Test(arguments: [#""no""#, "1", "[false]"])
    func aParseSpecialThatIsNotABooleanIs400(value: String) async throws {
        try await runAsTheRouter(addBOS: false) { client, backend in
            let response = try await client.post("/v1/completions", #"{"prompt": "hi", "parse_special": \#(value)}"#)
            #expect(response.status == .badRequest)
            let error = try JSONValue(response.body)["error"]
            #expect(error["type"].string == "invalid_request_error")
            #expect(error["code"].string == "invalid_type")
            #expect(error["param"].string == "parse_special")
            #expect(error["message"].string?.contains("parse_special") == true)
            #expect(backend.last == nil)
        }
    }

    /// A chat prompt needs its template's markers parsed; a client asking
    /// otherwise is told so rather than given a protection it does not get.
    @Test func chatRefusesParseSpecialFalse() async throws {
        try await ServerHarness().run { client, _ in
            let messages = #""messages": [{"role": "user", "content": "hi"}], "max_tokens": 2"#
            let refused = try await client.post("/v1/chat/completions", "{\(messages), \"parse_special\": false}")
            #expect(refused.status == .badRequest)
            let error = try JSONValue(refused.body)["error"]
            #expect(error["code"].string == "invalid_value" && error["param"].string == "parse_special")
            #expect(error["message"].string?.contains("/v1/completions") == true)
            let accepted = try await client.post("/v1/chat/completions", "{\(messages), \"parse_special\": true}")
            #expect(accepted.status == .ok)
        }
    }

    /// With the in-process engine (`loom serve`): the usage counts the
    /// prompt as the rule tokenized it.
    @Test func theServedEngineCountsTheParsedPrompt() async throws {
        try await ServerHarness().run { client, _ in
            let parsedBody = try JSONValue(try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 2}"#).body)
            #expect(parsedBody["usage"]["prompt_tokens"].int == parsed.count)
            let plainBody = try JSONValue(try await client.post("/v1/completions", #"{"prompt": "\#(chatML)", "max_tokens": 2, "parse_special": false}"#).body)
            #expect(plainBody["usage"]["prompt_tokens"].int == plain.count)
        }
    }
}
