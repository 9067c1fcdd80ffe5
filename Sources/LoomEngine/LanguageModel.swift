import LoomModel

/// Everything needed to turn text into text with one model file: weights,
/// tokenizer and chat template, loaded together from one GGUF.
public final class LanguageModel {
    public let path: String
    public let transformer: Transformer
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate?

    public init(path: String, threads: Int, maxBatchTokens: Int = 256) throws {
        let file = try GGUFFile(path: path)
        self.path = path
        transformer = try Transformer(file: file, threads: threads, maxBatchTokens: maxBatchTokens)
        tokenizer = try Tokenizers.make(Vocabulary(metadata: file.metadata, path: path))
        chatTemplate = try file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
    }

    public var vocabulary: Vocabulary { tokenizer.vocabulary }

    /// Renders messages with the model's own template, ready to tokenize with
    /// special tokens parsed.
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
        guard let chatTemplate else {
            throw ModelError(.invalidBatch, "\(path) has no tokenizer.chat_template; send a raw prompt instead")
        }
        let v = vocabulary
        return try chatTemplate.render(
            messages: messages, addGenerationPrompt: addGenerationPrompt,
            bosToken: v.bosID.map { v.tokens[Int($0)] } ?? "",
            eosToken: v.eosID.map { v.tokens[Int($0)] } ?? "")
    }
}
