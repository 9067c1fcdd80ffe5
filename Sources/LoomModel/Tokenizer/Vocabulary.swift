/// A model's vocabulary as GGUF stores it under `tokenizer.ggml.*`, with the
/// defaults and corrections llama.cpp applies when it loads one (special-token
/// ids, BOS/EOS policy, control-looking tokens promoted to control, the set of
/// end-of-generation tokens), so that tokenizers built from it agree with llama.cpp.
public struct Vocabulary: Sendable {
    public enum Model: String, Sendable {
        case bpe = "gpt2"
        case sentencePiece = "llama"
    }

    public enum TokenType: Int32, Sendable {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public var model: Model
    /// `tokenizer.ggml.pre`; empty when the file has none (llama.cpp then
    /// uses "default"). Only BPE vocabularies use it.
    public var preTokenizer: String
    public var tokens: [String]
    public var scores: [Float]
    public var types: [TokenType]
    public var merges: [String]
    public var bosID: TokenID?
    public var eosID: TokenID?
    public var unknownID: TokenID?
    /// `tokenizer.ggml.eot_token_id`, or a token recognised by its text (`<|im_end|>`, `<|eot_id|>` ...).
    public var eotID: TokenID?
    public var addBOS: Bool
    public var addEOS: Bool
    public var addSpacePrefix: Bool
    /// Every token that ends generation: eos, eot, eom, FIM pad/repo/separator,
    /// and the end-of-turn tokens llama.cpp recognises by their text.
    public var endOfGenerationIDs: Set<TokenID>
    /// Special tokens that swallow the whitespace after / before them when
    /// split out of text (llama.cpp sets these for Phi-3 only).
    var rightStripIDs: Set<TokenID> = []
    var leftStripIDs: Set<TokenID> = []

    public init(metadata: [String: GGUFValue], path: String) throws {
        let reader = VocabularyMetadata(metadata: metadata, path: path)
        let modelName = try reader.requiredString("tokenizer.ggml.model")
        guard let model = Model(rawValue: modelName) else {
            throw GGUFError(.invalidValue, "\(path): tokenizer.ggml.model is '\(modelName)'; Loom supports 'gpt2' (byte-level BPE) and 'llama' (SentencePiece)")
        }
        self.model = model
        preTokenizer = try reader.optionalString("tokenizer.ggml.pre") ?? ""
        tokens = try reader.requiredStrings("tokenizer.ggml.tokens")
        for index in tokens.indices where tokens[index].isEmpty {
            tokens[index] = "[EMPTY_\(index)]"  // llama.cpp's name for an empty token, so it stays addressable
        }
        scores = try reader.floats("tokenizer.ggml.scores", count: tokens.count) ?? Array(repeating: 0, count: tokens.count)
        types = try reader.ints("tokenizer.ggml.token_type", count: tokens.count)?.map { TokenType(rawValue: Int32(clamping: $0)) ?? .undefined }
            ?? Array(repeating: .normal, count: tokens.count)
        merges = model == .bpe ? try reader.requiredStrings("tokenizer.ggml.merges") : []

        let family = Self.defaults(model: model, preTokenizer: preTokenizer)
        addBOS = try reader.optionalBool("tokenizer.ggml.add_bos_token") ?? family.addBOS
        addEOS = try reader.optionalBool("tokenizer.ggml.add_eos_token") ?? false
        addSpacePrefix = try reader.optionalBool("tokenizer.ggml.add_space_prefix") ?? (model == .sentencePiece)
        bosID = try reader.tokenID("tokenizer.ggml.bos_token_id", default: family.bos, count: tokens.count)
        eosID = try reader.tokenID("tokenizer.ggml.eos_token_id", default: family.eos, count: tokens.count)
        unknownID = try reader.tokenID("tokenizer.ggml.unknown_token_id", default: family.unknown, count: tokens.count)
        eotID = try reader.tokenID("tokenizer.ggml.eot_token_id", default: nil, count: tokens.count)
        endOfGenerationIDs = []
        if addBOS && bosID == nil {
            throw GGUFError(.invalidValue, "\(path): tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set")
        }
        if addEOS && eosID == nil {
            throw GGUFError(.invalidValue, "\(path): tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set")
        }
        try resolveSpecialTokens(reader)
        if let name = try reader.optionalString("general.name")?.lowercased(), name.contains("phi-3") || name.contains("phi3") {
            applyPhi3Stripping()
        }
    }

    public var count: Int { tokens.count }

    /// llama.cpp's defaults before the file's own keys are read.
    private static func defaults(model: Model, preTokenizer: String) -> (bos: TokenID?, eos: TokenID?, unknown: TokenID?, addBOS: Bool) {
        switch model {
        case .sentencePiece:
            return (1, 2, 0, true)
        case .bpe:
            let bosFirst: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                                         "lfm2", "jina-v5-nano", "tekken", "chameleon"]
            let noBOS: Set<String> = ["glm4", "chatglm-bpe"]
            return (noBOS.contains(preTokenizer) ? nil : 11, 11, nil, bosFirst.contains(preTokenizer))
        }
    }

    /// Phi-3's chat markers eat the newline that follows them in its templates.
    private mutating func applyPhi3Stripping() {
        for id in tokens.indices where [.control, .userDefined, .unknown].contains(types[id]) {
            rightStripIDs.insert(TokenID(id))
        }
        for (id, text) in tokens.enumerated() {
            if text == "</s>" { rightStripIDs.insert(TokenID(id)) }
            if ["<unk>", "<s>", "<|endoftext|>"].contains(text) { rightStripIDs.remove(TokenID(id)) }
        }
    }
}

/// Typed reads of `tokenizer.ggml.*` keys whose errors name the key and what was expected.
struct VocabularyMetadata {
    let metadata: [String: GGUFValue]
    let path: String

    func requiredString(_ key: String) throws -> String {
        guard let value = metadata[key] else { throw GGUFError(.missingMetadata, "\(path): metadata '\(key)' is missing; a vocabulary needs it") }
        guard let string = value.string else { throw invalid(key, "a string") }
        return string
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = metadata[key] else { return nil }
        guard let string = value.string else { throw invalid(key, "a string") }
        return string
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let bool = value.bool else { throw invalid(key, "a bool") }
        return bool
    }

    func requiredStrings(_ key: String) throws -> [String] {
        guard let value = metadata[key] else { throw GGUFError(.missingMetadata, "\(path): metadata '\(key)' is missing; a vocabulary needs it") }
        guard let array = value.array, let strings = value.strings, strings.count == array.count else {
            throw invalid(key, "an array of strings")
        }
        return strings
    }

    func floats(_ key: String, count: Int) throws -> [Float]? {
        guard let value = metadata[key] else { return nil }
        guard let array = value.array, let floats = value.floats, floats.count == array.count, floats.count >= count else {
            throw invalid(key, "an array of at least \(count) numbers, one per token")
        }
        return Array(floats.prefix(count))
    }

    func ints(_ key: String, count: Int) throws -> [Int]? {
        guard let value = metadata[key] else { return nil }
        guard let array = value.array, let ints = value.ints, ints.count == array.count, ints.count >= count else {
            throw invalid(key, "an array of at least \(count) integers, one per token")
        }
        return Array(ints.prefix(count))
    }

    /// A special-token id. As in llama.cpp, an id outside the vocabulary is
    /// ignored (the default stays), and a default outside it means "none".
    func tokenID(_ key: String, default fallback: TokenID?, count: Int) throws -> TokenID? {
        let base = fallback.flatMap { $0 >= 0 && Int($0) < count ? $0 : nil }
        guard let value = metadata[key] else { return base }
        guard let id = value.int else { throw invalid(key, "an integer token id") }
        return id >= 0 && id < count ? TokenID(id) : base
    }

    private func invalid(_ key: String, _ expected: String) -> GGUFError {
        GGUFError(.invalidValue, "\(path): metadata '\(key)' has the wrong type; expected \(expected)")
    }
}
