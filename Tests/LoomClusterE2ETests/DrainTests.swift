import Foundation
import LoomTesting
import Testing

/// SIGTERM is a planned stop: a worker finishes what it runs, takes no new
/// request, leaves the router, and exits cleanly.
@Suite(.serialized) struct DrainTests {
    @Test func aDecodeWorkerStoppedMidStreamFinishesItsRequestsAndLeaves() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        // Long enough that the stop lands while decode-0 still decodes, with
        // every request already placed (none can arrive after the stop and
        // be passed on) and time enough to finish on a loaded machine.
        let (leaving, questions, requests) = try await cluster.fourRequestsWithDecode0Decoding(
            maxTokens: 256, ignoreEOS: true, decode0Extra: ["--drain-seconds", "300"], allRunning: true)
        kill(leaving.process.processIdentifier, SIGTERM)
        for (question, request) in zip(questions, requests) {
            let completion = try await request.value
            #expect(completion.status == 200, "\(question): \(completion.raw)\n\(cluster.logs)")
            let object = try JSONSerialization.jsonObject(with: Data(completion.raw.utf8)) as? [String: Any]
            let generated = (object?["usage"] as? [String: Any])?["completion_tokens"] as? Int
            #expect(generated == 256, "\(question): every token asked for: \(completion.raw)")
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
