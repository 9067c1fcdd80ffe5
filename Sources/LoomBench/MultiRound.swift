/// The multi-round chat workload LMCache and SGLang HiCache measure their
/// stores on: `users` users share a system prompt, each has a document of
/// its own, and each asks `rounds` questions in turn, every one sent with
/// the whole conversation so far (the server's own earlier answers
/// included), so each round's prompt extends the last. Seeded: the same
/// seed asks the same questions.
public struct MultiRoundWorkload: Sendable {
    public static let systemWords = 250
    public static let documentWords = 300
    public static let questionWords = 10...18

    public let users: Int
    public let rounds: Int
    let system: String
    let documents: [String]
    let questions: [[String]]

    public init(users: Int, rounds: Int, seed: UInt64) {
        self.users = users
        self.rounds = rounds
        let text = WorkloadGenerator(kind: .multiRound, seed: seed)
        var rng = SeededRandom(seed: seed)
        system = "You are a concise assistant. Answer from the user's document. " + text.prose(&rng, words: Self.systemWords)
        documents = (0..<users).map { user in "Document \(user + 1): " + text.prose(&rng, words: Self.documentWords) }
        questions = (0..<users).map { _ in (0..<rounds).map { _ in text.question(&rng, words: Self.questionWords) } }
    }

    /// A user's first prompt: the shared system prompt, then its document
    /// and first question.
    public func opening(user: Int) -> [ChatMessage] {
        [ChatMessage(role: "system", content: system),
         ChatMessage(role: "user", content: documents[user] + "\n\nQuestion: " + questions[user][0])]
    }

    /// The question of `round` (from 1 on), to append after the answer.
    public func question(user: Int, round: Int) -> ChatMessage {
        ChatMessage(role: "user", content: questions[user][round])
    }
}

/// Runs a multi-round workload round by round: every user asks its next
/// question (with its conversation so far, the last answer appended),
/// `concurrency` requests at a time; the next round starts when this one
/// has ended. With more users than requests in flight, other users'
/// rounds pass between two of one user's, as on a real service, and a
/// worker's pool must hold many histories to keep them. A failed round's
/// answer is left out and the user goes on.
public struct MultiRoundRunner: Sendable {
    public var concurrency: Int
    public var progressInterval: Duration

    public init(concurrency: Int, progressInterval: Duration) {
        self.concurrency = concurrency
        self.progressInterval = progressInterval
    }

    public func run(
        _ workload: MultiRoundWorkload, send: @escaping @Sendable (BenchPrompt) async -> RequestOutcome,
        onProgress: @escaping @Sendable (RunProgress) -> Void
    ) async -> RunResult {
        let start = ContinuousClock.now
        let counter = ProgressCounter(total: workload.users * workload.rounds, start: start)
        let interval = progressInterval
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                onProgress(await counter.snapshot())
            }
        }
        var conversations = (0..<workload.users).map { workload.opening(user: $0) }
        var outcomes: [RequestOutcome] = []
        let runner = BenchRunner(shape: .closed(concurrency: concurrency), seed: 0, progressInterval: .seconds(3600))
        for round in 0..<workload.rounds {
            if round > 0 {
                for user in conversations.indices { conversations[user].append(workload.question(user: user, round: round)) }
            }
            let result = await runner.run(prompts: conversations.map(BenchPrompt.init(messages:)), send: { prompt in
                let outcome = await send(prompt)
                await counter.record(outcome)
                return outcome
            }, onProgress: { _ in })
            for (user, outcome) in result.outcomes.enumerated() {
                if let answer = outcome.metrics?.text { conversations[user].append(ChatMessage(role: "assistant", content: answer)) }
            }
            outcomes += result.outcomes
        }
        ticker.cancel()
        let result = RunResult(outcomes: outcomes, wallTime: (ContinuousClock.now - start).seconds)
        onProgress(await counter.snapshot())
        return result
    }
}
