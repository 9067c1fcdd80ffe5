import Foundation
import Hummingbird
import HummingbirdTesting
import LoomHTTP
import Testing

/// The text before the first occurrence of `stop`, compared scalar by
/// scalar as the server matches (Foundation's search would fold canonically
/// equivalent sequences).
func textBefore(_ stop: String, in text: String) -> String {
    let t = Array(text.unicodeScalars), s = Array(stop.unicodeScalars)
    let start = (0...(t.count - s.count)).first { t[$0..<($0 + s.count)].elementsEqual(s) } ?? t.count
    return String(String.UnicodeScalarView(t[..<start]))
}

/// stop, n, seed and logprobs through both endpoints.
@Suite struct SamplingFeatureTests {
    private func completion(_ client: any TestClientProtocol, _ fields: String) async throws -> JSONValue {
        let response = try await client.post("/v1/completions", "{\(fields)}")
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        return try JSONValue(response.body)
    }

    /// The byte-level tiny vocabulary makes nearly every character its own
    /// token, so a three-character stop string always spans tokens.
    @Test func stopStringsAcrossTokensEndTheTextAndAreNeverEmitted() async throws {
        try await ServerHarness().run { client, _ in
            let base = #""prompt": "The", "max_tokens": 40, "temperature": 0"#
            let free = try #require(try await completion(client, base)["choices"][0]["text"].string)
            let scalars = Array(free.unicodeScalars)
            try #require(scalars.count >= 20, "free text too short: \(free)")
            let stop = String(String.UnicodeScalarView(scalars[12..<15]))
            let expected = textBefore(stop, in: free)
            let stopJSON = String(decoding: try JSONEncoder().encode([stop, "never-appears-0"]), as: UTF8.self)

            let whole = try await completion(client, "\(base), \"stop\": \(stopJSON)")
            #expect(whole["choices"][0]["text"].string == expected)
            #expect(whole["choices"][0]["finish_reason"].string == "stop")

            let response = try await client.post("/v1/completions", "{\(base), \"stop\": \(stopJSON), \"stream\": true}")
            let events = try sseEvents(response.body).dropLast().map { try JSONValue($0) }
            let pieces = events.compactMap { $0["choices"][0]["text"].string }
            #expect(pieces.joined() == expected)
            #expect(events.last?["choices"][0]["finish_reason"].string == "stop")
        }
    }

    @Test func aSingleStopStringIsAccepted() async throws {
        try await ServerHarness().run { client, _ in
            let free = try #require(try await completion(client, #""prompt": "Hi", "max_tokens": 20, "temperature": 0"#)["choices"][0]["text"].string)
            let stop = String(String.UnicodeScalarView(Array(free.unicodeScalars)[5..<7]))
            let stopJSON = String(decoding: try JSONEncoder().encode(stop), as: UTF8.self)
            let body = try await completion(client, #""prompt": "Hi", "max_tokens": 20, "temperature": 0, "stop": \#(stopJSON)"#)
            #expect(body["choices"][0]["text"].string == textBefore(stop, in: free))
        }
    }

    /// Choice i of a seeded request is what a single request seeded seed+i gives.
    @Test func nChoicesWithASeedAreReproducibleAndUseSeedPlusIndex() async throws {
        try await ServerHarness().run { client, _ in
            let sampled = #""prompt": "Seeds", "max_tokens": 16, "temperature": 1.0"#
            let first = try await completion(client, "\(sampled), \"n\": 3, \"seed\": 42")
            let again = try await completion(client, "\(sampled), \"n\": 3, \"seed\": 42")
            let texts = first["choices"].array.map { $0["text"].string ?? "" }
            #expect(first["choices"].array.map { $0["index"].int } == [0, 1, 2])
            #expect(texts == again["choices"].array.map { $0["text"].string ?? "" })
            #expect(Set(texts).count > 1, "different seeds should give different samples: \(texts)")
            var tokensAlone = 0
            for i in 0..<3 {
                let alone = try await completion(client, "\(sampled), \"seed\": \(42 + i)")
                #expect(alone["choices"][0]["text"].string == texts[i], "choice \(i)")
                #expect(alone["choices"][0]["finish_reason"].string == first["choices"][i]["finish_reason"].string)
                tokensAlone += alone["usage"]["completion_tokens"].int ?? 0
            }
            // Usage counts every choice's tokens, the prompt once.
            #expect(first["usage"]["completion_tokens"].int == tokensAlone)
        }
    }

    @Test func nChoicesStreamEachWithItsOwnIndexAndFinish() async throws {
        try await ServerHarness().run { client, _ in
            let body = #"{"messages": [{"role": "user", "content": "n"}], "n": 2, "max_tokens": 5, "temperature": 0.8, "seed": 7, "stream": true}"#
            let chunks = try sseEvents(try await client.post("/v1/chat/completions", body).body).dropLast().map { try JSONValue($0) }
            for index in 0..<2 {
                let mine = chunks.filter { $0["choices"][0]["index"].int == index }
                #expect(mine.first?["choices"][0]["delta"]["role"].string == "assistant")
                #expect(mine.filter { $0["choices"][0]["finish_reason"].string == "length" }.count == 1)
            }
        }
    }

    @Test func chatLogprobsReportEachTokenWithItsAlternatives() async throws {
        try await ServerHarness().run { client, _ in
            let body = #"{"messages": [{"role": "user", "content": "lp"}], "max_tokens": 6, "temperature": 0, "logprobs": true, "top_logprobs": 3}"#
            let json = try JSONValue(try await client.post("/v1/chat/completions", body).body)
            let content = json["choices"][0]["logprobs"]["content"].array
            #expect(content.count == 6)
            var text = ""
            for entry in content {
                let top = entry["top_logprobs"].array
                #expect(top.count == 3)
                // Greedy: the chosen token is the most likely one.
                #expect(top[0]["token"].string == entry["token"].string)
                #expect((entry["logprob"].double ?? 1) <= 0)
                #expect(entry["bytes"].array.count == entry["token"].string?.utf8.count)
                text += entry["token"].string ?? ""
            }
            #expect(text == json["choices"][0]["message"]["content"].string)
        }
    }

    @Test func completionLogprobsAreParallelArrays() async throws {
        try await ServerHarness().run { client, _ in
            let json = try await completion(client, #""prompt": "lp", "max_tokens": 5, "temperature": 0, "logprobs": 2"#)
            let logprobs = json["choices"][0]["logprobs"]
            #expect(logprobs["tokens"].array.count == 5)
            #expect(logprobs["token_logprobs"].array.count == 5)
            #expect(logprobs["top_logprobs"].array.allSatisfy { $0.keys.count >= 1 && $0.keys.count <= 2 })
            #expect(logprobs["text_offset"].array.first?.int == 0)
            let none = try await completion(client, #""prompt": "lp", "max_tokens": 2"#)
            #expect(none["choices"][0]["logprobs"].isNull)
        }
    }
}
