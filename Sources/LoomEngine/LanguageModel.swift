import LoomModel

/// Everything needed to turn text into text with one model file: weights,
/// tokenizer and chat template, loaded together from one GGUF.
public final class LanguageModel {
    public let path: String
    public let transformer: Transformer
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate?

    /// `shard`: the part this process computes, for a rank of a
    /// tensor-parallel group (the whole model by default).
    public convenience init(path: String, threads: Int, maxBatchTokens: Int = 256, shard: TensorShard? = nil) throws {
        try self.init(file: GGUFFile(path: path), threads: threads, maxBatchTokens: maxBatchTokens, shard: shard)
    }

    /// Logit rows one step returns at most.
    public static let maxLogitRows = 64

    public init(file: GGUFFile, threads: Int, maxBatchTokens: Int = 256, shard: TensorShard? = nil) throws {
        let path = file.path
        self.path = path
        transformer = try Transformer(file: file, threads: threads, maxBatchTokens: maxBatchTokens, maxLogitRows: Self.maxLogitRows, shard: shard)
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
