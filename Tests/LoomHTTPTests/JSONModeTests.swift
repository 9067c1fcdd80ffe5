import Foundation
import Hummingbird
import HummingbirdTesting
@testable import LoomEngine
@testable import LoomHTTP
import Testing

@Suite struct JSONModeTests {
    /// The tiny model's random weights would never write JSON unaided; with
    /// the constraint every output is a JSON-object prefix, and one that
    /// stopped (not cut by max_tokens) parses.
    @Test func jsonModeOutputIsAJSONObjectPrefixAndParsesWhenStopped() async throws {
        try await ServerHarness().run { client, _ in
            for seed in 0..<4 {
                let body = #"{"messages": [{"role": "user", "content": "json"}], "max_tokens": 60, "temperature": 0.7, "seed": \#(seed), "response_format": {"type": "json_object"}}"#
                let response = try await client.post("/v1/chat/completions", body)
                #expect(response.status == .ok)
                let choice = try JSONValue(response.body)["choices"][0]
                let text = try #require(choice["message"]["content"].string)
                var state = JSONPrefix()
                #expect(text.utf8.allSatisfy { state.feed($0) }, "not a JSON prefix: \(text)")
                if choice["finish_reason"].string == "stop" {
                    #expect(state.isComplete)
                    #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any], "\(text)")
                }
            }
        }
    }

    @Test func anUnsupportedResponseFormatIs400() async throws {
        try await ServerHarness().run { client, _ in
            let response = try await client.post("/v1/completions", #"{"prompt": "x", "response_format": {"type": "json_schema"}}"#)
            #expect(response.status == .badRequest)
            #expect(try JSONValue(response.body)["error"]["param"].string == "response_format")
        }
    }
}
