import Foundation
import Hummingbird
import HummingbirdTesting
import LoomHTTP
import Testing

/// Every error reaches the client in OpenAI's schema with the right status,
/// and a refused request leaves the server serving others.
@Suite struct ErrorStatusTests {
    private func expectError(_ response: TestResponse, _ status: HTTPResponse.Status, code: String, param: String? = nil) throws -> String {
        #expect(response.status == status)
        let error = try JSONValue(response.body)["error"]
        #expect(error.keys == ["message", "type", "param", "code"])
        #expect(error["code"].string == code)
        if let param { #expect(error["param"].string == param) }
        return error["message"].string ?? ""
    }

    @Test func malformedJSONIs400() async throws {
        try await ServerHarness().run { client, _ in
            let response = try await client.post("/v1/completions", "{\"prompt\": \"hi\",")
            let message = try expectError(response, .badRequest, code: "invalid_json")
            #expect(message.contains("not valid JSON"))
        }
    }

    @Test func aWrongTypeNamesTheField() async throws {
        try await ServerHarness().run { client, _ in
            let response = try await client.post("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#)
            let message = try expectError(response, .badRequest, code: "invalid_type", param: "temperature")
            #expect(message.contains("temperature"))
            let nested = try await client.post("/v1/chat/completions", #"{"messages": [{"role": 3, "content": "hi"}]}"#)
            _ = try expectError(nested, .badRequest, code: "invalid_type", param: "messages[0].role")
            let missing = try await client.post("/v1/chat/completions", #"{"model": "tiny"}"#)
            _ = try expectError(missing, .badRequest, code: "missing_required_parameter", param: "messages")
        }
    }

    @Test func anOutOfRangeValueIs400() async throws {
        try await ServerHarness().run { client, _ in
            let response = try await client.post("/v1/completions", #"{"prompt": "hi", "top_p": 0}"#)
            _ = try expectError(response, .badRequest, code: "invalid_value", param: "top_p")
        }
    }

    @Test func anUnknownModelIs404() async throws {
        try await ServerHarness().run { client, _ in
            let response = try await client.post("/v1/completions", #"{"model": "gpt-4", "prompt": "hi"}"#)
            let message = try expectError(response, .notFound, code: "model_not_found", param: "model")
            #expect(message.contains("gpt-4") && message.contains("tiny"))
        }
    }

    @Test func promptPlusMaxTokensOverTheContextIs400WithTheNumbers() async throws {
        try await ServerHarness().run { client, model in
            let prompt = String(repeating: "z", count: 100)
            let count = try model.tokenizer.encode(prompt, as: .rawPrompt()).count
            let response = try await client.post("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 200}"#)
            let message = try expectError(response, .badRequest, code: "context_length_exceeded")
            #expect(message.contains("\(count) tokens") && message.contains("200") && message.contains("\(model.contextLength) tokens"))
        }
    }

    @Test func aBodyOverTheLimitIs413() async throws {
        var harness = ServerHarness()
        harness.server.maxBodyBytes = 512
        try await harness.run { client, _ in
            let big = String(repeating: "a", count: 2000)
            let response = try await client.post("/v1/completions", #"{"prompt": "\#(big)"}"#)
            _ = try expectError(response, .contentTooLarge, code: "request_too_large")
        }
    }

    @Test func withAnAPIKeyOnlyBearersOfItGetIn() async throws {
        var harness = ServerHarness()
        harness.server.apiKey = "sesame"
        try await harness.run { client, _ in
            let body = #"{"prompt": "hi", "max_tokens": 2}"#
            let none = try await client.post("/v1/completions", body)
            _ = try expectError(none, .unauthorized, code: "invalid_api_key")
            let wrong = try await client.post("/v1/completions", body, headers: [.authorization: "Bearer nope"])
            _ = try expectError(wrong, .unauthorized, code: "invalid_api_key")
            let right = try await client.post("/v1/completions", body, headers: [.authorization: "Bearer sesame", .contentType: "application/json"])
            #expect(right.status == .ok)
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
        }
    }

    /// One running and one waiting slot: the third of three choices is
    /// refused, the whole request gets 429, and the next request runs.
    @Test func overloadIs429WithRetryAfterAndOthersCarryOn() async throws {
        var harness = ServerHarness()
        harness.maxRunning = 1
        harness.maxWaiting = 1
        try await harness.run { client, _ in
            let response = try await client.post("/v1/completions", #"{"prompt": "hello", "n": 3, "max_tokens": 200, "temperature": 0}"#)
            let message = try expectError(response, .tooManyRequests, code: "overloaded")
            #expect(response.headers[.retryAfter] == "1")
            #expect(message.contains("waiting"))
            let next = try await client.post("/v1/completions", #"{"prompt": "hello", "max_tokens": 3, "ignore_eos": true}"#)
            #expect(next.status == .ok)
            #expect(try JSONValue(next.body)["usage"]["completion_tokens"].int == 3)
        }
    }

    @Test func healthAndModels() async throws {
        try await ServerHarness().run { client, _ in
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
            let models = try await client.execute(uri: "/v1/models", method: .get)
            let list = try JSONValue(models.body)
            #expect(list["object"].string == "list")
            #expect(list["data"].array.map { $0["id"].string } == ["tiny"])
        }
    }
}

@Suite struct BodyShapeTests {
    @Test func aBodyThatIsNotAnObjectIs400() async throws {
        try await ServerHarness().run { client, _ in
            let response = try await client.post("/v1/chat/completions", "[1, 2]")
            #expect(response.status == .badRequest)
            #expect(try JSONValue(response.body)["error"]["message"].string == "the body must be a JSON object")
        }
    }
}

@Suite struct IsolationTests {
    /// Bad requests arriving while others run are refused alone: the good
    /// requests' text is exactly what each gives when it runs by itself.
    @Test func badRequestsAmidGoodOnesLeaveTheGoodOnesUntouched() async throws {
        try await ServerHarness().run { client, _ in
            let good = (0..<3).map { #"{"prompt": "iso \#($0)", "max_tokens": 20, "temperature": 0}"# }
            let bad = [#"{"prompt": "x", "max_tokens": 9000}"#, "{", #"{"prompt": 5}"#, #"{"prompt": "x", "model": "nope"}"#]
            var alone: [String] = []
            for body in good { alone.append(try JSONValue(try await client.post("/v1/completions", body).body)["choices"][0]["text"].string ?? "?") }
            let results = try await withThrowingTaskGroup(of: (String, Int, String?).self) { group in
                for body in good + bad {
                    group.addTask {
                        let response = try await client.post("/v1/completions", body)
                        return (body, Int(response.status.code), try? JSONValue(response.body)["choices"][0]["text"].string)
                    }
                }
                var all: [String: (Int, String?)] = [:]
                for try await (body, status, text) in group { all[body] = (status, text) }
                return all
            }
            for (i, body) in good.enumerated() {
                #expect(results[body]?.0 == 200)
                #expect(results[body]?.1 == alone[i])
            }
            #expect(bad.map { results[$0]?.0 } == [400, 400, 400, 404])
        }
    }
}

@Suite struct CacheNamespaceTests {
    /// Each API key is its own cache namespace, taken from the key that
    /// authenticated the request and from nothing a client can send.
    @Test func twoKeysNeverShareCachedBlocks() async throws {
        var harness = ServerHarness()
        harness.server.apiKeys = ["alpha", "beta"]
        try await harness.run { client, _ in
            let prompt = (0..<24).map { "word\($0)" }.joined(separator: " ")
            func cached(_ key: String, user: String? = nil) async throws -> Int {
                var body: [String: Any] = ["prompt": prompt, "max_tokens": 1, "temperature": 0]
                if let user { body["user"] = user }
                let text = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
                let response = try await client.post("/v1/completions", text, headers: [.authorization: "Bearer \(key)", .contentType: "application/json"])
                #expect(response.status == .ok)
                return try JSONValue(response.body)["usage"]["prompt_tokens_details"]["cached_tokens"].int ?? -1
            }
            let first = try await cached("alpha"), again = try await cached("alpha")
            let other = try await cached("beta", user: "alpha"), otherAgain = try await cached("beta")
            #expect(first == 0)
            #expect(again > 0, "a key shares with itself")
            #expect(other == 0, "another key does not, whatever the body says")
            #expect(otherAgain > 0)
        }
    }
}
