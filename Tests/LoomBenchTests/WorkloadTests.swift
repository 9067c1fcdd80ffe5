import Testing
@testable import LoomBench

@Suite struct WorkloadTests {
    @Test(arguments: WorkloadKind.allCases)
    func sameSeedSamePrompts(kind: WorkloadKind) {
        let a = WorkloadGenerator(kind: kind, seed: 7).prompts(count: 24)
        let b = WorkloadGenerator(kind: kind, seed: 7).prompts(count: 24)
        let c = WorkloadGenerator(kind: kind, seed: 8).prompts(count: 24)
        #expect(a == b)
        #expect(a != c)
        #expect(a.count == 24)
    }

    @Test func plainQuestionsAreShortAndVaried() {
        let prompts = WorkloadGenerator(kind: .plain, seed: 1).prompts(count: 64)
        for prompt in prompts {
            #expect(prompt.messages.map(\.role) == ["user"])
            #expect(WorkloadGenerator.shortWords.contains(prompt.wordCount), "\(prompt.wordCount) words")
        }
        #expect(Set(prompts.map(\.messages)).count == 64)
    }

    @Test func sharedPrefixCyclesFourSystemPrompts() {
        let prompts = WorkloadGenerator(kind: .sharedPrefix, seed: 1).prompts(count: 16)
        let systems = prompts.map { $0.messages[0] }
        #expect(systems.allSatisfy { $0.role == "system" })
        #expect(Set(systems).count == WorkloadGenerator.sharedSystemPrompts)
        for (i, system) in systems.enumerated() {
            #expect(system == systems[i % WorkloadGenerator.sharedSystemPrompts])
            #expect(system.content.split(separator: " ").count == WorkloadGenerator.systemPromptWords)
        }
        let questions = prompts.map { $0.messages[1] }
        #expect(Set(questions).count == 16)
        for question in questions {
            #expect(WorkloadGenerator.sharedQuestionWords.contains(question.content.split(separator: " ").count))
        }
    }

    @Test func mixedHasALongPromptEveryFourth() {
        let prompts = WorkloadGenerator(kind: .mixed, seed: 3).prompts(count: 20)
        for (i, prompt) in prompts.enumerated() {
            let range = i % 4 == 3 ? WorkloadGenerator.longWords : WorkloadGenerator.shortWords
            #expect(range.contains(prompt.wordCount), "request \(i): \(prompt.wordCount) words")
        }
    }
}

@Suite struct SeededRandomTests {
    @Test func staysInRangeAndReachesAllOfIt() {
        var rng = SeededRandom(seed: 99)
        var seen = Set<Int>()
        for _ in 0..<10_000 {
            let value = rng.inRange(5...9)
            seen.insert(value)
            #expect((5...9).contains(value))
            let u = rng.unit()
            #expect(u >= 0 && u < 1)
        }
        #expect(seen == Set(5...9))
    }

    @Test func poissonArrivalsHaveTheAskedRate() {
        let arrivals = LoadShape.poissonArrivals(count: 4001, rate: 8, seed: 5)
        #expect(arrivals.first == 0)
        #expect(zip(arrivals, arrivals.dropFirst()).allSatisfy { $0 <= $1 })
        // Mean gap of 4000 exponential draws: 1/8 s within a few percent.
        let meanGap = arrivals.last! / 4000
        #expect(abs(meanGap - 0.125) < 0.01)
        #expect(arrivals == LoadShape.poissonArrivals(count: 4001, rate: 8, seed: 5))
    }
}
