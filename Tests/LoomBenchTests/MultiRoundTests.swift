import Foundation
import Synchronization
import Testing
@testable import LoomBench

@Suite struct MultiRoundTests {
    /// What each user sent, round by round.
    private final class Sent: Sendable {
        let prompts = Mutex<[String: [[ChatMessage]]]>([:])
    }

    @Test func eachRoundExtendsTheConversationWithTheAnswerAndTheNextQuestion() async {
        let workload = MultiRoundWorkload(users: 3, rounds: 4, seed: 7)
        let sent = Sent()
        let result = await MultiRoundRunner(concurrency: 2, progressInterval: .seconds(60)).run(workload, send: { prompt in
            let user = String(prompt.messages[1].content.prefix(while: { $0 != ":" }))
            let round = sent.prompts.withLock { prompts in
                prompts[user, default: []].append(prompt.messages)
                return prompts[user]!.count
            }
            // The third round of every user fails: its answer is left out.
            guard round != 3 else { return .failed("HTTP 503") }
            return .ok(RequestMetrics(timeToFirstToken: 0.01, interTokenLatencies: [], endToEnd: 0.02, outputTokens: 2, text: "answer \(round)"))
        }, onProgress: { _ in })
        #expect(result.outcomes.count == 12 && result.outcomes.filter { $0.metrics == nil }.count == 3)
        #expect(result.outcomes.prefix(3).allSatisfy { $0.metrics?.text == "answer 1" }, "round by round: every user's first, then every user's second")
        let prompts = sent.prompts.withLock { $0 }
        #expect(prompts.keys.sorted() == ["Document 1", "Document 2", "Document 3"])
        for (user, rounds) in prompts {
            let index = Int(user.split(separator: " ")[1])! - 1
            #expect(rounds.count == 4)
            #expect(rounds[0] == workload.opening(user: index))
            #expect(rounds[1] == rounds[0] + [ChatMessage(role: "assistant", content: "answer 1"), workload.question(user: index, round: 1)])
            #expect(rounds[3] == rounds[2] + [workload.question(user: index, round: 3)], "a failed round adds no answer")
            #expect(rounds[0][0] == prompts["Document 1"]![0][0], "every user shares the system prompt")
        }
        #expect(MultiRoundWorkload(users: 3, rounds: 4, seed: 7).opening(user: 2) == workload.opening(user: 2), "seeded")
        #expect(MultiRoundWorkload(users: 3, rounds: 4, seed: 8).opening(user: 2) != workload.opening(user: 2))
    }

    @Test func aStreamsTextIsKeptForTheNextRound() {
        var recorder = StreamRecorder()
        recorder.record(.content("Paris"), at: 0.1)
        recorder.record(.content(" is"), at: 0.2)
        recorder.record(.done, at: 0.3)
        #expect(recorder.finish(at: 0.3).metrics?.text == "Paris is")
    }
}
