import Foundation
import LoomTesting
import Testing

/// SIGTERM is a planned stop: a worker finishes what it runs, takes no new
/// request, leaves the router, and exits cleanly.
@Suite(.serialized) struct DrainTests {
    @Test func aDecodeWorkerStoppedMidStreamFinishesItsRequestsAndLeaves() async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let (leaving, questions, requests) = try await cluster.fourRequestsWithDecode0Decoding()
        kill(leaving.process.processIdentifier, SIGTERM)
        for (question, request) in zip(questions, requests) {
            let completion = try await request.value
            #expect(completion.status == 200, "\(question): \(completion.raw)\n\(cluster.logs)")
            #expect(completion.content == (try reference.completion(chat(question), maxTokens: 48)), "\(question)")
        }
        leaving.process.waitUntilExit()
        #expect(leaving.process.terminationStatus == 0, "\(leaving.tail)")
        #expect(leaving.tail.contains("drained and deregistered"), "\(leaving.tail)")
        let after = try await cluster.status()
        #expect(cluster.worker("decode-0", in: after) == nil, "the router forgot the worker at once: \(after)")
        let next = try await cluster.complete(body(chat("Name a desert in Chile."), maxTokens: 8))
        #expect(next.status == 200, "\(next.raw)")
    }
}
