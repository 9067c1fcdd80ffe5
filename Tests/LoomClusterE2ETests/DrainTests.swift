import Foundation
import LoomTesting
import Testing

/// SIGTERM is a planned stop: a worker finishes what it runs, takes no new
/// request, leaves the router, and exits cleanly.
@Suite(.serialized) struct DrainTests {
    @Test func aDecodeWorkerStoppedMidStreamFinishesItsRequestsAndLeaves() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter(["--disaggregation-threshold", "100000"])
        // The drain bound is generous: a loaded machine must not turn
        // "finished where it ran" into "moved elsewhere".
        let leaving = try cluster.startWorker("decode-0", role: "decode", extra: ["--drain-seconds", "300"])
        try await cluster.waitUntilHealthy(["decode-0"])
        // Two long generations, both on decode-0 (the only worker yet), seen
        // running: every request is placed before the stop, and the stop
        // lands while they still decode (hundreds of steps, against
        // heartbeats 100 ms apart).
        let questions = ["Name a river in France.", "Name a city in Peru."]
        let requests = questions.map { question in
            Task { try await cluster.complete(body(chat(question), maxTokens: 1024).merging(["ignore_eos": true]) { $1 }) }
        }
        _ = try await cluster.waitForStatus("both requests decoding on decode-0") { s in
            (cluster.worker("decode-0", in: s)?["running"] as? Int ?? 0) == 2
        }
        // Where requests go once decode-0 has left.
        try cluster.startWorker("decode-1", role: "decode")
        try await cluster.waitUntilHealthy(["decode-1"])
        kill(leaving.process.processIdentifier, SIGTERM)
        for (question, request) in zip(questions, requests) {
            let completion = try await request.value
            #expect(completion.status == 200, "\(question): \(completion.raw)\n\(cluster.logs)")
            let object = try JSONSerialization.jsonObject(with: Data(completion.raw.utf8)) as? [String: Any]
            let generated = (object?["usage"] as? [String: Any])?["completion_tokens"] as? Int
            #expect(generated == 1024, "\(question): every token asked for: \(completion.raw)")
        }
        leaving.process.waitUntilExit()
        #expect(leaving.process.terminationStatus == 0, "\(leaving.tail)")
        #expect(leaving.tail.contains("drained and deregistered"), "\(leaving.tail)")
        let after = try await cluster.status()
        #expect(((after["decisions"] as? [String: Int])?["retry"] ?? 0) == 0, "the requests finished where they ran, none moved: \(after)")
        #expect(cluster.worker("decode-0", in: after) == nil, "the router forgot the worker at once: \(after)")
        let next = try await cluster.complete(body(chat("Name a desert in Chile."), maxTokens: 8))
        #expect(next.status == 200, "\(next.raw)")
    }
}
