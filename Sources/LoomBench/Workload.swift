/// The kinds of load `loom bench serve` can send.
public enum WorkloadKind: String, CaseIterable, Sendable {
    /// Short, varied chat questions (~20–60 prompt tokens with the template).
    case plain
    /// Four ~500-token system prompts shared round-robin, plus a short
    /// distinct question: measures what a prefix cache buys.
    case sharedPrefix = "shared-prefix"
    /// Mostly short prompts with a ~450-token one every fourth request, so
    /// long prefills land while other requests decode (the disaggregation
    /// case).
    case mixed
    /// Users in conversation: a shared system prompt, a document each, and
    /// rounds of questions each asked with the whole conversation so far
    /// (`--users`, `--rounds`): what a KV store is for.
    case multiRound = "multi-round"
}

/// One request's prompt.
public struct BenchPrompt: Equatable, Sendable {
    public var messages: [ChatMessage]

    public init(messages: [ChatMessage]) { self.messages = messages }

    /// Words in all messages: the generator's proxy for prompt tokens.
    public var wordCount: Int {
        messages.reduce(0) { $0 + $1.content.split(separator: " ").count }
    }
}

/// Builds the prompts of a run. The same kind, seed and count give the same
/// prompts, so two servers measured with one seed see identical requests.
public struct WorkloadGenerator: Sendable {
    /// Word budgets. This text is ~1.05 tokens a word in SmolLM2's
    /// vocabulary (checked with llama-server's /tokenize), and SmolLM2's
    /// template adds ~31 tokens (a default system prompt) to a user-only
    /// chat: short questions come to ~40–60 prompt tokens (~10–30 without
    /// that default), a shared system prompt to ~500, a long mixed prompt
    /// to ~420–500.
    public static let shortWords = 8...28
    public static let sharedQuestionWords = 10...20
    public static let longWords = 370...450
    public static let systemPromptWords = 450
    public static let sharedSystemPrompts = 4
    /// In `mixed`, requests whose index is 3 mod 4 carry a long prompt.
    public static let mixedLongEvery = 4

    public let kind: WorkloadKind
    public let seed: UInt64

    public init(kind: WorkloadKind, seed: UInt64) {
        self.kind = kind
        self.seed = seed
    }

    public func prompts(count: Int) -> [BenchPrompt] {
        var rng = SeededRandom(seed: seed)
        switch kind {
        case .plain:
            return (0..<count).map { _ in BenchPrompt(messages: [user(question(&rng, words: Self.shortWords))]) }
        case .sharedPrefix:
            let systems = (0..<Self.sharedSystemPrompts).map { systemPrompt(&rng, index: $0) }
            return (0..<count).map { i in
                BenchPrompt(messages: [
                    ChatMessage(role: "system", content: systems[i % systems.count]),
                    user(question(&rng, words: Self.sharedQuestionWords)),
                ])
            }
        case .multiRound:
            // Conversations are built as they go (`MultiRoundRunner`); as
            // single prompts they are every user's opening.
            let workload = MultiRoundWorkload(users: count, rounds: 1, seed: seed)
            return (0..<count).map { BenchPrompt(messages: workload.opening(user: $0)) }
        case .mixed:
            return (0..<count).map { i in
                let isLong = i % Self.mixedLongEvery == Self.mixedLongEvery - 1
                let text = isLong ? longTask(&rng) : question(&rng, words: Self.shortWords)
                return BenchPrompt(messages: [user(text)])
            }
        }
    }

    private func user(_ text: String) -> ChatMessage { ChatMessage(role: "user", content: text) }

    /// Opener, subject, filler clauses, context: a word budget drawn from
    /// `words`, met by trimming the filler only (the head and context are at
    /// most 14 words, under every budget's top).
    func question(_ rng: inout SeededRandom, words: ClosedRange<Int>) -> String {
        let budget = rng.inRange(words)
        let head = rng.pick(WordLists.openers).split(separator: " ").map(String.init)
            + ["the", rng.pick(WordLists.adjectives), rng.pick(WordLists.nouns)]
        let context = rng.pick(WordLists.contexts).split(separator: " ").map(String.init)
        var filler: [String] = []
        while head.count + filler.count + context.count < budget {
            filler += [rng.pick(WordLists.connectors)] + clause(&rng)
        }
        filler = Array(filler.prefix(max(budget - head.count - context.count, 0)))
        return (head + filler + context).joined(separator: " ") + "?"
    }

    /// Sentences of prose, `words` words long in total.
    func prose(_ rng: inout SeededRandom, words: Int) -> String {
        var sentences: [String] = []
        var total = 0
        while total < words {
            var sentence = ["The"] + clause(&rng)
            if rng.below(2) == 0 { sentence += [rng.pick(WordLists.connectors)] + clause(&rng) }
            sentence = Array(sentence.prefix(words - total))
            total += sentence.count
            sentences.append(sentence.joined(separator: " ") + ".")
        }
        return sentences.joined(separator: " ")
    }

    private func systemPrompt(_ rng: inout SeededRandom, index: Int) -> String {
        let head = "You are assistant \(index + 1). Read these notes and answer briefly."
        let headWords = head.split(separator: " ").count
        return head + " " + prose(&rng, words: Self.systemPromptWords - headWords)
    }

    private func longTask(_ rng: inout SeededRandom) -> String {
        let tail = "Summarize the notes above in one sentence."
        let words = rng.inRange(Self.longWords) - tail.split(separator: " ").count
        return prose(&rng, words: words) + " " + tail
    }

    /// "adjective noun verb the adjective noun adverb", six to seven words.
    private func clause(_ rng: inout SeededRandom) -> [String] {
        var words = [rng.pick(WordLists.adjectives), rng.pick(WordLists.nouns), rng.pick(WordLists.verbs),
                     "the", rng.pick(WordLists.adjectives), rng.pick(WordLists.nouns)]
        if rng.below(2) == 0 { words.append(rng.pick(WordLists.adverbs)) }
        return words
    }
}
