import Foundation
import Testing
import LoomEngine
import LoomModel
import LoomTesting

@Suite(.serialized) struct RealModelTests {
    let model: LanguageModel
    let golden: GenerationGolden

    init() throws {
        model = try LanguageModel(path: try TestModel.path(), threads: 2)
        golden = try GenerationGolden.load()
    }

    /// The model's own template and our tokenizer give exactly the prompt ids
    /// llama.cpp was fed for the chat goldens.
    @Test func chatTemplateAndTokenizerReproduceLlamaCppPrompts() throws {
        let system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
        let chats = golden.cases.filter { $0.prompt.hasPrefix("<|im_start|>") }
        #expect(chats.count >= 6)
        for item in chats {
            let question = item.prompt.components(separatedBy: "<|im_start|>user\n")[1]
                .components(separatedBy: "<|im_end|>")[0]
            let rendered = try model.renderChat([
                ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: question),
            ])
            #expect(rendered == item.prompt)
            #expect(try model.tokenizer.encode(rendered, as: .renderedChat) == item.prompt_ids)
        }
    }

    /// Sequences decoded together in one batch, at different positions, get
    /// the tokens each gets alone.
    @Test func batchedDecodeEqualsSingleSequenceDecode() throws {
        let prompts = golden.cases.prefix(4).map(\.prompt_ids)
        let steps = 12
        let alone = try prompts.map {
            try Generator(model: model.transformer).generate(prompt: $0, maxTokens: steps).tokens
        }
        let transformer = model.transformer
        let layout = KVCacheLayout(config: transformer.config)
        let perSequence = layout.blocksNeeded(tokens: (prompts.map(\.count).max() ?? 0) + steps)
        let cache = SequenceKVCache(layout: layout, capacity: perSequence * layout.blockSize * prompts.count)
        let tables = prompts.indices.map { s in (0..<perSequence).map { Int32(s * perSequence + $0) } }
        var sequences = prompts
        var generated = [[TokenID]](repeating: [], count: prompts.count)
        var batch = ForwardBatch()
        for (s, prompt) in prompts.enumerated() {
            batch.append(tokens: prompt, startingAt: 0, blockTable: tables[s])
        }
        for _ in 0..<steps {
            let logits = try transformer.forward(batch, kv: cache.memory)
            let vocab = transformer.config.vocabularySize
            batch = ForwardBatch()
            for s in prompts.indices {
                let row = UnsafeBufferPointer(rebasing: logits[(s * vocab)..<((s + 1) * vocab)])
                let next = Logprobs.top(1, in: row)[0].token
                generated[s].append(next)
                sequences[s].append(next)
                batch.append(tokens: [next], startingAt: sequences[s].count - 1, blockTable: tables[s])
            }
        }
        #expect(generated == alone)
    }

    @Test func promptLongerThanTheContextIsRefusedWithTheNumbers() throws {
        let context = model.transformer.config.contextLength
        let prompt = [TokenID](repeating: 504, count: context - 10)
        #expect {
            try Generator(model: model.transformer).generate(prompt: prompt, maxTokens: 20)
        } throws: { error in
            let message = "\(error)"
            return message.contains("\(context - 10)") && message.contains("\(context)") && message.contains("at most 10")
        }
    }

    @Test func endOfTurnStopsChatGeneration() throws {
        let prompt = try model.tokenizer.encode(
            try model.renderChat([ChatMessage(role: "user", content: "What is the capital of France? Answer in one sentence.")]),
            as: .renderedChat)
        let result = try Generator(model: model.transformer).generate(
            prompt: prompt, maxTokens: 64, stopTokens: model.vocabulary.endOfGenerationIDs)
        #expect(result.finishReason == .stop)
        #expect(model.tokenizer.decode(result.tokens).contains("Paris"))
    }
}
