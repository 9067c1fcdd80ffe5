import ArgumentParser
import Foundation
import LoomEngine
import LoomModel
import LoomTensorParallel

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate text from a prompt, streaming it as it comes.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "The prompt (raw text; with --chat, the user's message).")
    var prompt: String

    @Option(name: .long, help: "With --chat: a system message.")
    var system: String?

    @Flag(name: .long, help: "Wrap the prompt in the model's chat template.")
    var chat = false

    @Flag(name: .long, help: "Treat special tokens written in the prompt (like <|im_start|>) as plain text, for a prompt whose author must not write turn markers.")
    var noParseSpecial = false

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens: Int = 128

    @Option(name: .long, help: "0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long) var topK: Int = 0
    @Option(name: .long) var topP: Float = 1
    @Option(name: .long) var minP: Float = 0
    @Option(name: .long) var repetitionPenalty: Float = 1
    @Option(name: .long) var frequencyPenalty: Float = 0
    @Option(name: .long) var presencePenalty: Float = 0

    @Option(name: .long, help: "Seed for reproducible sampling.")
    var seed: UInt64?

    @Flag(name: .long, help: "Print one JSON object {\"tokens\": [...], \"text\": \"...\"} at the end instead of streaming.")
    var json = false

    @Flag(name: .long, help: "Keep generating past end-of-generation tokens.")
    var ignoreEos = false

    @OptionGroup var tensorParallel: LocalGroupOptions

    func validate() throws {
        // The template writes its turn markers into the same text as the
        // message, so they could not be parsed while the message is not.
        guard !(chat && noParseSpecial) else {
            throw ValidationError("--no-parse-special applies to a raw prompt; with --chat the template's turn markers must be parsed")
        }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be 0 or more") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be 0 or more") }
        guard (0...1).contains(topP), topP > 0 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard (0...1).contains(minP) else { throw ValidationError("--min-p must be in [0, 1]") }
        guard topK >= 0 else { throw ValidationError("--top-k must be 0 (off) or more") }
        guard repetitionPenalty > 0 else { throw ValidationError("--repetition-penalty must be positive") }
    }

    func run() async throws {
        let file = try GGUFFile(path: try options.modelPath())
        let split = try TensorSplit(file: file, size: tensorParallel.tp)
        let model = try LanguageModel(file: file, threads: options.threads, shard: split.shards[0])
        let ids: [TokenID]
        if chat {
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: prompt))
            ids = try model.tokenizer.encode(try model.renderChat(messages), as: .renderedChat)
        } else {
            ids = try model.tokenizer.encode(prompt, as: .rawPrompt(parseSpecial: !noParseSpecial))
        }
        let sampling = SamplingParameters(
            temperature: temperature, topK: topK, topP: topP, minP: minP,
            repetitionPenalty: repetitionPenalty, frequencyPenalty: frequencyPenalty,
            presencePenalty: presencePenalty, seed: seed)
        var group: LocalGroup?
        if tensorParallel.tp > 1 {
            let transformer = model.transformer
            let geometry = GroupGeometry(
                kvBlocks: KVCacheLayout(config: transformer.config).blocksNeeded(tokens: Generator.kvTokens(prompt: ids.count, maxTokens: maxTokens)),
                blockSize: KVCacheLayout.defaultBlockSize, maxBatchTokens: transformer.maxBatchTokens, maxLogitRows: transformer.maxLogitRows)
            group = try await LocalGroup.start(file: file, split: split, leader: transformer, threads: options.threads, geometry: geometry, options: tensorParallel)
        }
        defer { group?.stop() }
        var detokenizer = StreamingDetokenizer(tokenizer: model.tokenizer)
        let result = try Generator(model: model.transformer).generate(
            prompt: ids, maxTokens: maxTokens, sampling: sampling,
            stopTokens: ignoreEos ? [] : model.vocabulary.endOfGenerationIDs
        ) { token, _ in
            let piece = detokenizer.append(token)
            if !json {
                FileHandle.standardOutput.write(Data(piece.utf8))
            }
            return true
        }
        if json {
            try printJSON(tokens: result.tokens, text: model.tokenizer.decode(result.tokens))
        } else {
            FileHandle.standardOutput.write(Data((detokenizer.finish() + "\n").utf8))
        }
    }

    private func printJSON(tokens: [TokenID], text: String) throws {
        struct Output: Encodable {
            var tokens: [TokenID]
            var text: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(Output(tokens: tokens, text: text))
        print(String(decoding: data, as: UTF8.self))
    }
}
