import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomEngine
import LoomModel
import LoomTesting
import Testing

/// What one process alone generates for a chat: the ground truth the
/// cluster must reproduce token for token at temperature 0.
struct Reference {
    let model: LanguageModel

    init() throws {
        model = try LanguageModel(path: try TestModel.path(), threads: 2)
    }

    func prompt(_ messages: [ChatMessage]) throws -> [TokenID] {
        try model.tokenizer.encode(try model.renderChat(messages), as: .renderedChat)
    }

    func completion(_ messages: [ChatMessage], maxTokens: Int) throws -> String {
        let output = try Generator(model: model.transformer).generate(
            prompt: try prompt(messages), maxTokens: maxTokens, stopTokens: model.vocabulary.endOfGenerationIDs)
        return model.tokenizer.decode(output.tokens)
    }
}

let longSystemPrompt = """
You are a careful assistant for a geography class. Answer every question in one short sentence, \
name the country and the city, and never add a greeting, a list or a follow-up question. If you do \
not know, say so plainly.
"""

func chat(_ question: String) -> [ChatMessage] {
    [ChatMessage(role: "system", content: longSystemPrompt), ChatMessage(role: "user", content: question)]
}

func body(_ messages: [ChatMessage], maxTokens: Int, stream: Bool = false) -> [String: Any] {
    ["messages": messages.map { ["role": $0.role, "content": $0.content] }, "max_tokens": maxTokens, "temperature": 0, "stream": stream]
}

func content(_ response: [String: Any]) -> String? {
    ((response["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
}

@Suite(.serialized) struct DisaggregatedServingTests {
    /// nil: the workers pick shm (one host); else every worker moves KV
    /// over libfabric with this provider.
    @Test(arguments: [nil, "tcp;ofi_rxm"] as [String?])
    func prefillWritesTheKVAndDecodeNeverRecomputesThePrompt(fabric: String?) async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let extra = fabric.map { ["--fabric-provider", $0] } ?? []
        try cluster.startWorker("prefill-0", role: "prefill", extra: extra)
        try cluster.startWorker("decode-0", role: "decode", extra: extra)
        try await cluster.waitUntilHealthy(["prefill-0", "decode-0"])

        let messages = chat("What is the capital of France?")
        let promptTokens = try reference.prompt(messages).count
        let (status, response) = try await cluster.post("v1/chat/completions", body(messages, maxTokens: 24))
        #expect(status == 200, "\(response)\n\(cluster.logs)")
        let expected = try reference.completion(messages, maxTokens: 24)
        #expect(content(response) == expected)
        let usage = try #require(response["usage"] as? [String: Any])
        let generated = try #require(usage["completion_tokens"] as? Int)

        // The decode worker fed only generated tokens to its model; the
        // prompt's KV came from the prefill worker, over the transfer layer.
        let settled = try await cluster.waitForStatus("decode counters") { s in
            (cluster.worker("decode-0", in: s)?["remote_prefilled_tokens"] as? Int ?? 0) > 0
        }
        let decode = try #require(cluster.worker("decode-0", in: settled))
        let prefill = try #require(cluster.worker("prefill-0", in: settled))
        #expect(decode["remote_prefilled_tokens"] as? Int == promptTokens)
        #expect((decode["computed_tokens"] as? Int ?? 0) <= generated, "decode computed \(decode["computed_tokens"] ?? "?") tokens for \(generated) generated")
        #expect(prefill["computed_tokens"] as? Int == promptTokens)
        let blocks = (promptTokens + 15) / 16
        #expect(prefill["kv_blocks_sent"] as? Int == blocks && decode["kv_blocks_received"] as? Int == blocks)
        #expect((settled["decisions"] as? [String: Int])?["remote"] == 1)
        if fabric == nil {
            #expect(prefill["shm_writes"] as? Int == 1 && prefill["tcp_writes"] as? Int == 0, "workers on one host share memory")
        } else {
            #expect(prefill["fabric_writes"] as? Int == 1 && prefill["shm_writes"] as? Int == 0 && prefill["tcp_writes"] as? Int == 0,
                    "a cluster given a fabric provider moves KV over it")
        }
    }

    @Test func streamingThroughTheRouterMatchesAndShortPromptsStayOnTheDecodeWorker() async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter(["--disaggregation-threshold", "1000"])
        try cluster.startWorker("prefill-0", role: "prefill")
        try cluster.startWorker("decode-0", role: "decode")
        try await cluster.waitUntilHealthy(["prefill-0", "decode-0"])

        let messages = chat("Where is the Eiffel Tower?")
        let text = try await streamedText(cluster, body(messages, maxTokens: 20, stream: true))
        #expect(text == (try reference.completion(messages, maxTokens: 20)))
        let status = try await cluster.status()
        #expect((status["decisions"] as? [String: Int])?["local"] == 1, "a prompt under the threshold is prefilled by the decode worker")
    }

    @Test func theRoutersIndexMatchesTheWorkersCachesAndRepeatsGoWhereTheirPrefixIs() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter(["--disaggregation-threshold", "1000"])
        try cluster.startWorker("decode-0", role: "decode")
        try cluster.startWorker("decode-1", role: "decode")
        try await cluster.waitUntilHealthy(["decode-0", "decode-1"])

        for (i, question) in ["What is the capital of Spain?", "What is the capital of Italy?", "What is the capital of Spain?"].enumerated() {
            let (status, response) = try await cluster.post("v1/chat/completions", body(chat(question), maxTokens: 4))
            #expect(status == 200, "\(response)")
            // The index is exact, not predictive: it knows a block once the
            // worker's next heartbeat reports it.
            try await Task.sleep(for: .milliseconds(400))
            _ = try await cluster.waitForStatus("request \(i)'s blocks indexed") { s in
                let workers = s["workers"] as? [[String: Any]] ?? []
                return workers.allSatisfy { $0["cached_blocks"] as? Int == $0["indexed_blocks"] as? Int }
                    && workers.contains { ($0["indexed_blocks"] as? Int ?? 0) > 0 }
            }
        }
        // Every worker's cache, as it reports it, equals what the router
        // indexed from its events.
        let settled = try await cluster.waitForStatus("index caught up") { s in
            ["decode-0", "decode-1"].allSatisfy { name in
                let w = cluster.worker(name, in: s)
                return w?["cached_blocks"] as? Int == w?["indexed_blocks"] as? Int
            } && (s["prefix_index_blocks"] as? Int ?? 0) > 0
        }
        let decisions = try #require(settled["decisions"] as? [String: Int])
        #expect((decisions["prefix_hit"] ?? 0) >= 2, "the shared system prompt and the repeat hit the cache: \(decisions)")
        #expect((settled["prefix_hit_rate"] as? Double ?? 0) > 0.3)
    }

    func streamedText(_ cluster: ClusterHarness, _ body: [String: Any]) async throws -> String {
        var request = URLRequest(url: cluster.httpURL.appendingPathComponent("v1/chat/completions"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, _) = try await URLSession.shared.data(for: request)
        var text = ""
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("data: {") {
            let event = try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
            let delta = (event?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]
            text += delta?["content"] as? String ?? ""
        }
        #expect(String(decoding: data, as: UTF8.self).hasSuffix("data: [DONE]\n\n"))
        return text
    }
}
