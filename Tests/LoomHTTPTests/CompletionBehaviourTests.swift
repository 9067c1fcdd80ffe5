import Foundation
import Hummingbird
import HummingbirdTesting
import LoomEngine
import LoomHTTP
import LoomModel
import LoomTesting
import Testing

/// What the endpoints generate, checked against the engine's reference path.
@Suite struct CompletionBehaviourTests {
    /// The text `Generator` produces for a raw prompt, detokenized as a stream would be.
    private func referenceText(_ prompt: String, maxTokens: Int, model: ServedModel) throws -> (String, Int) {
        let transformer = try Transformer(path: ServerHarness.modelPath, threads: 1)
        let ids = try model.tokenizer.encode(prompt, as: .rawPrompt())
        let result = try Generator(model: transformer).generate(
            prompt: ids, maxTokens: maxTokens, stopTokens: model.tokenizer.vocabulary.endOfGenerationIDs)
        var detokenizer = StreamingDetokenizer(tokenizer: model.tokenizer)
        let text = result.tokens.map { detokenizer.append($0) }.joined() + detokenizer.finish()
        return (text, result.tokens.count)
    }

    private func streamedText(_ events: [String], field: (JSONValue) -> JSONValue) throws -> String {
        try events.dropLast().compactMap { try field(JSONValue($0)).string }.joined()
    }

    @Test func greedyThroughTheServerEqualsGenerator() async throws {
        try await ServerHarness().run { client, model in
            let (expected, count) = try referenceText("Once upon", maxTokens: 24, model: model)
            let response = try await client.post("/v1/completions", #"{"prompt": "Once upon", "max_tokens": 24, "temperature": 0}"#)
            #expect(response.status == .ok)
            let body = try JSONValue(response.body)
            #expect(body["object"].string == "text_completion")
            #expect(body["choices"][0]["text"].string == expected)
            #expect(body["usage"]["completion_tokens"].int == count)
            #expect(body["choices"][0]["finish_reason"].string == (count == 24 ? "length" : "stop"))
        }
    }

    @Test func streamingTextEqualsNonStreamingTextAtTemperatureZero() async throws {
        try await ServerHarness().run { client, _ in
            let chat = #""messages": [{"role": "user", "content": "Say something"}], "max_tokens": 30, "temperature": 0"#
            let whole = try JSONValue(try await client.post("/v1/chat/completions", "{\(chat)}").body)
            let streamed = try sseEvents(try await client.post("/v1/chat/completions", "{\(chat), \"stream\": true}").body)
            let text = try streamedText(streamed) { $0["choices"][0]["delta"]["content"] }
            #expect(whole["choices"][0]["message"]["content"].string == text)
            #expect(!text.isEmpty)

            let plain = #""prompt": "abc", "max_tokens": 30, "temperature": 0"#
            let wholeText = try JSONValue(try await client.post("/v1/completions", "{\(plain)}").body)
            let streamedPlain = try sseEvents(try await client.post("/v1/completions", "{\(plain), \"stream\": true}").body)
            #expect(wholeText["choices"][0]["text"].string == (try streamedText(streamedPlain) { $0["choices"][0]["text"] }))
        }
    }

    /// OpenAI's chunk sequence: a role chunk, content chunks with a null
    /// finish_reason, one closing chunk, a usage chunk with no choices, [DONE].
    @Test func chatStreamFramingMatchesOpenAI() async throws {
        try await ServerHarness().run { client, _ in
            let body = #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}"#
            let response = try await client.post("/v1/chat/completions", body)
            #expect(response.headers[.contentType] == "text/event-stream")
            let events = try sseEvents(response.body)
            let chunks = try events.dropLast().map { try JSONValue($0) }
            #expect(chunks.count >= 4)
            #expect(Set(chunks.map { $0["object"].string }) == ["chat.completion.chunk"])
            #expect(Set(chunks.map { $0["id"].string }).count == 1)
            #expect(chunks[0]["choices"][0]["delta"]["role"].string == "assistant")
            #expect(events[1].contains(#""finish_reason":null"#) && events[1].contains(#""usage":null"#))
            let closing = chunks[chunks.count - 2]
            let id = closing["id"].string ?? "", created = closing["created"].int ?? 0
            // Keys are sorted, so a chunk's bytes are fixed by its content.
            #expect(events[events.count - 3] == #"{"choices":[{"delta":{},"finish_reason":"length","index":0,"logprobs":null}],"created":\#(created),"id":"\#(id)","model":"tiny","object":"chat.completion.chunk","usage":null}"#)
            #expect(closing["choices"][0]["finish_reason"].string == "length")
            #expect(closing["choices"][0]["delta"].keys.isEmpty)
            let usage = chunks[chunks.count - 1]
            #expect(usage["choices"].array.isEmpty)
            #expect(usage["usage"]["completion_tokens"].int == 6)
            #expect(usage["usage"]["total_tokens"].int == (usage["usage"]["prompt_tokens"].int ?? 0) + 6)
            for chunk in chunks.dropLast(2) { #expect(chunk["choices"][0]["finish_reason"].isNull) }
        }
    }

    /// Without include_usage there is no usage chunk: the closing chunk is last before [DONE].
    @Test func completionStreamEndsWithFinishReasonThenDone() async throws {
        try await ServerHarness().run { client, _ in
            let events = try sseEvents(try await client.post("/v1/completions", #"{"prompt": "x", "max_tokens": 4, "stream": true, "ignore_eos": true}"#).body)
            let last = try JSONValue(events[events.count - 2])
            #expect(last["object"].string == "text_completion")
            #expect(last["choices"][0]["finish_reason"].string == "length")
            #expect(!events.joined().contains("usage"))
        }
    }

    /// ignore_eos (vLLM's and llama-server's extension, which load
    /// generators send) keeps sampling past end-of-generation tokens.
    @Test func ignoreEOSGeneratesExactlyMaxTokens() async throws {
        try await ServerHarness().run { client, served in
            for seed in 0..<8 {
                let body = try JSONValue(try await client.post("/v1/completions", #"{"prompt": "x", "max_tokens": 12, "seed": \#(seed), "ignore_eos": true}"#).body)
                #expect(body["usage"]["completion_tokens"].int == 12 && body["choices"][0]["finish_reason"].string == "length")
            }
            let refused = try await client.post("/v1/completions", #"{"prompt": "x", "ignore_eos": true, "response_format": {"type": "json_object"}}"#)
            #expect(refused.status == .badRequest)
        }
    }

    @Test func finishReasonLengthAndUsage() async throws {
        try await ServerHarness().run { client, _ in
            let body = try JSONValue(try await client.post("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "go"}], "max_completion_tokens": 5, "temperature": 0}"#).body)
            #expect(body["object"].string == "chat.completion")
            #expect(body["choices"][0]["finish_reason"].string == "length")
            #expect(body["choices"][0]["message"]["role"].string == "assistant")
            #expect(body["usage"]["completion_tokens"].int == 5)
        }
    }
}

@Suite struct MetricsTests {
    @Test func metricsCountTokensAndTimeRequests() async throws {
        try await ServerHarness().run { client, _ in
            let body = try JSONValue(try await client.post("/v1/completions", #"{"prompt": "metrics", "max_tokens": 4, "temperature": 0}"#).body)
            let generated = try #require(body["usage"]["completion_tokens"].int)
            let prompt = try #require(body["usage"]["prompt_tokens"].int)
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            let lines = String(buffer: response.body).split(separator: "\n").map(String.init)
            #expect(lines.contains("loom_generation_tokens_total \(generated)"))
            #expect(lines.contains("loom_prompt_tokens_total \(prompt)"))
            #expect(lines.contains("loom_time_to_first_token_seconds_count 1"))
            #expect(lines.contains("loom_inter_token_latency_seconds_count \(generated - 1)"))
            #expect(lines.contains("loom_e2e_request_latency_seconds_count 1"))
            #expect(lines.contains("loom_requests_in_flight 0.0") || lines.contains("loom_requests_in_flight 0"))
        }
    }
}
