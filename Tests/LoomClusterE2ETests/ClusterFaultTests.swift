import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomEngine
import LoomModel
import LoomTesting
import Synchronization
import Testing

/// A prompt long enough that its prefill takes seconds on one thread.
func longChat(_ question: String) -> [ChatMessage] {
    let facts = (1...60).map { "Fact \($0): the river number \($0) flows through \($0 * 3) towns and \($0 % 7) lakes." }
    return [ChatMessage(role: "system", content: longSystemPrompt + " " + facts.joined(separator: " ")),
            ChatMessage(role: "user", content: question)]
}

/// Set once a request task has ended.
final class Finished: Sendable {
    let value = Atomic<Bool>(false)
}

@Suite(.serialized) struct ClusterFaultTests {
    @Test func aPrefillWorkerThatHangsMidPromptIsRoutedAround() async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let prefill = try cluster.startWorker("prefill-0", role: "prefill")
        try cluster.startWorker("decode-0", role: "decode")
        try await cluster.waitUntilHealthy(["prefill-0", "decode-0"])

        // On a loaded machine a prefill can end between two looks at the
        // status; then another prompt (uncached) is tried, three at most.
        var caught: (messages: [ChatMessage], request: Task<ClusterHarness.Completion, Error>)?
        for attempt in 1...3 where caught == nil {
            let messages = longChat("Which river flows through the most towns? Attempt \(attempt).")
            let payload = try JSONSerialization.data(withJSONObject: body(messages, maxTokens: 12))
            let finished = Finished()
            let request = Task {
                defer { finished.value.store(true, ordering: .relaxed) }
                return try await cluster.complete(try JSONSerialization.jsonObject(with: payload) as! [String: Any])
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while !finished.value.load(ordering: .relaxed), ContinuousClock.now < deadline {
                if let status = try? await cluster.status(), (cluster.worker("prefill-0", in: status)?["running"] as? Int ?? 0) > 0 {
                    caught = (messages, request)
                    break
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            if caught == nil { _ = try await request.value }
        }
        let (messages, request) = try #require(caught, "the prefill worker was never seen busy in three long prompts")
        // Stopped, not killed: its sockets stay open and it never answers,
        // so only the missed heartbeats can reveal it.
        kill(prefill.process.processIdentifier, SIGSTOP)
        defer { kill(prefill.process.processIdentifier, SIGCONT) }
        let completion = try await request.value
        #expect(completion.status == 200, "\(completion.raw)\n\(cluster.logs)")
        #expect(completion.content == (try reference.completion(messages, maxTokens: 12)))
        let after = try await cluster.status()
        #expect(cluster.worker("prefill-0", in: after)?["healthy"] as? Bool == false)
        #expect(((after["decisions"] as? [String: Int])?["retry"] ?? 0) >= 1)
    }

    @Test func aDecodeWorkerKilledMidStreamLosesNoRequest() async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let (victim, questions, requests) = try await cluster.fourRequestsWithDecode0Decoding()
        victim.crash()
        for (question, request) in zip(questions, requests) {
            let completion = try await request.value
            #expect(completion.status == 200, "\(question): \(completion.raw)\n\(cluster.logs)")
            // Continued elsewhere from the tokens already delivered: the
            // client's text is what one process would have written.
            #expect(completion.content == (try reference.completion(chat(question), maxTokens: ClusterHarness.fourRequestsTokens)), "\(question)")
        }
        let after = try await cluster.status()
        #expect(((after["decisions"] as? [String: Int])?["retry"] ?? 0) >= 1, "a request was moved off the killed worker")
    }

    @Test func workersRegisterAgainWithARestartedRouterAndRebuildItsIndex() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let (http, rpc) = (freePort(), freePort())
        try cluster.startRouter(rpcPort: rpc, httpPort: http)
        try cluster.startWorker("decode-0", role: "decode")
        try await cluster.waitUntilHealthy(["decode-0"])
        let (status, _) = try await cluster.post("v1/chat/completions", body(chat("What is the capital of Peru?"), maxTokens: 4))
        #expect(status == 200)
        _ = try await cluster.waitForStatus("blocks indexed") { s in (cluster.worker("decode-0", in: s)?["indexed_blocks"] as? Int ?? 0) > 0 }

        cluster.router.crash()
        try cluster.startRouter(rpcPort: rpc, httpPort: http)
        // The new router knows nothing until the worker registers again
        // with its whole cache.
        let rebuilt = try await cluster.waitForStatus("worker back with its cache") { s in
            let w = cluster.worker("decode-0", in: s)
            return w?["healthy"] as? Bool == true && (w?["indexed_blocks"] as? Int ?? 0) > 0
                && w?["indexed_blocks"] as? Int == w?["cached_blocks"] as? Int
        }
        #expect((rebuilt["prefix_index_blocks"] as? Int ?? 0) > 0)
        let (again, response) = try await cluster.post("v1/chat/completions", body(chat("What is the capital of Peru?"), maxTokens: 4))
        #expect(again == 200, "\(response)")
        #expect(((try await cluster.status())["decisions"] as? [String: Int])?["prefix_hit"] == 1)
    }
}
