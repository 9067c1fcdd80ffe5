import Testing
import LoomEngine
import LoomModel
import LoomTesting

/// One end-to-end check that the plan the scheduler makes is what the model
/// runs: the three-line loop on a tiny seeded model over a paged pool must
/// generate what `Generator` generates for each prompt alone, with shared
/// prefixes and preemption in play. The scheduler's own tests use the
/// simulated model; this one guards the seam between them.
@Suite struct EngineWiringTests {
    @Test(arguments: [64, 9])
    func batchedPagedGenerationEqualsEachPromptAlone(blocks: Int) throws {
        let path = try TinyModel().write(to: temporaryPath("engine-wiring.gguf"))
        let model = try Transformer(path: path, threads: 1, maxBatchTokens: 64)
        let kv = PagedKVMemory(layout: KVCacheLayout(config: model.config), blockCount: blocks)
        var scheduler = try Scheduler(SchedulerConfiguration(
            blockCount: blocks, tokenBudget: 24, maxRunning: 4, contextLength: model.config.contextLength))
        let shared = (0..<40).map { TokenID(($0 * 7) % 200 + 10) }
        let prompts = (0..<4).map { i in shared + (0..<(5 + 9 * i)).map { TokenID(($0 * 13 + i) % 200 + 10) } }
        for (i, prompt) in prompts.enumerated() {
            try scheduler.submit(EngineRequest(id: RequestID(UInt64(i)), prompt: prompt, maxTokens: 12))
        }
        var outputs: [RequestID: [TokenID]] = [:]
        var greedy = Sampler(parameters: SamplingParameters(), vocabularySize: model.config.vocabularySize)
        while !scheduler.isIdle {
            let plan = scheduler.schedule()
            let logits = try model.forward(plan.forwardBatch(), kv: kv.memory)
            let vocabulary = model.config.vocabularySize
            let sampled = plan.logitRequests.indices.map { row in
                greedy.sample(UnsafeBufferPointer(rebasing: logits[(row * vocabulary)..<((row + 1) * vocabulary)]), history: [])
            }
            for case .token(let id, let token) in scheduler.update(StepResult(sampled: sampled)) {
                outputs[id, default: []].append(token)
            }
        }
        let generator = Generator(model: model)
        for (i, prompt) in prompts.enumerated() {
            let alone = try generator.generate(prompt: prompt, maxTokens: 12).tokens
            #expect(outputs[RequestID(UInt64(i))] == alone, "prompt \(i)")
        }
        #expect(scheduler.stats.prefixHitTokens > 0)
        if blocks < 16 { #expect(scheduler.stats.preemptions > 0) }
    }
}
