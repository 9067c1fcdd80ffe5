/// How rotary position embeddings pair up the dimensions of a head.
public enum RopeStyle: Sendable, Equatable {
    /// Adjacent pairs (2i, 2i+1): the original llama layout that GGUF
    /// converters produce by permuting Q and K.
    case interleaved
    /// Pairs (i, i + d/2): GPT-NeoX, Qwen2.
    case halves
}

/// The shape of a transformer, read from GGUF metadata (`{arch}.*` keys).
public struct ModelConfig: Sendable, Equatable {
    public var architecture: String
    public var layerCount: Int
    public var embeddingLength: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var contextLength: Int
    public var normEpsilon: Float
    public var ropeBase: Float
    public var ropeScale: Float
    public var ropeDim: Int
    public var ropeStyle: RopeStyle
    public var vocabularySize: Int
    public var expertCount: Int
    public var expertsUsed: Int
    public var expertFeedForwardLength: Int
    public var sharedExpertFeedForwardLength: Int
    /// Whether the chosen experts' weights are renormalized to sum to one
    /// (Mixtral: yes; Qwen-MoE: no).
    public var normalizeExpertWeights: Bool

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }
    public var isMoE: Bool { expertCount > 0 }

    public static let supportedArchitectures = ["llama", "mistral", "qwen2", "qwen2moe", "mixtral"]
}

extension ModelConfig {
    public init(gguf: GGUFFile) throws {
        let meta = MetadataReader(file: gguf)
        let arch = try meta.string("general.architecture")
        guard Self.supportedArchitectures.contains(arch) else {
            throw GGUFError(
                .invalidValue,
                "\(gguf.path): architecture '\(arch)' is not supported; Loom runs \(Self.supportedArchitectures.joined(separator: ", "))")
        }
        architecture = arch
        layerCount = try meta.int("\(arch).block_count")
        embeddingLength = try meta.int("\(arch).embedding_length")
        headCount = try meta.int("\(arch).attention.head_count")
        kvHeadCount = meta.optionalInt("\(arch).attention.head_count_kv") ?? headCount
        headDim = meta.optionalInt("\(arch).attention.key_length") ?? embeddingLength / max(headCount, 1)
        contextLength = meta.optionalInt("\(arch).context_length") ?? 2048
        normEpsilon = meta.optionalFloat("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5
        ropeBase = meta.optionalFloat("\(arch).rope.freq_base") ?? 10_000
        ropeDim = meta.optionalInt("\(arch).rope.dimension_count") ?? headDim
        ropeScale = try Self.ropeScale(meta, arch: arch, path: gguf.path)
        ropeStyle = arch.hasPrefix("qwen2") ? .halves : .interleaved
        expertCount = meta.optionalInt("\(arch).expert_count") ?? 0
        expertsUsed = meta.optionalInt("\(arch).expert_used_count") ?? 0
        feedForwardLength = meta.optionalInt("\(arch).feed_forward_length") ?? 0
        expertFeedForwardLength = meta.optionalInt("\(arch).expert_feed_forward_length") ?? feedForwardLength
        sharedExpertFeedForwardLength = meta.optionalInt("\(arch).expert_shared_feed_forward_length") ?? 0
        normalizeExpertWeights = meta.optionalBool("\(arch).expert_weights_norm") ?? (arch != "qwen2moe")
        vocabularySize = meta.optionalInt("\(arch).vocab_size")
            ?? gguf.metadata["tokenizer.ggml.tokens"]?.array?.count ?? 0
        try validate(path: gguf.path)
    }

    private static func ropeScale(_ meta: MetadataReader, arch: String, path: String) throws -> Float {
        let type = meta.optionalString("\(arch).rope.scaling.type") ?? "none"
        switch type {
        case "none":
            return 1
        case "linear":
            let factor = meta.optionalFloat("\(arch).rope.scaling.factor") ?? 1
            return factor > 0 ? 1 / factor : 1
        default:
            throw GGUFError(.invalidValue, "\(path): rope scaling '\(type)' is not supported; Loom supports none and linear")
        }
    }

    private func validate(path: String) throws {
        func fail(_ what: String) -> GGUFError { GGUFError(.invalidValue, "\(path): \(what)") }
        guard layerCount > 0, embeddingLength > 0, headCount > 0, headDim > 0 else {
            throw fail("block_count, embedding_length and head_count must be positive")
        }
        guard kvHeadCount > 0, headCount % kvHeadCount == 0 else {
            throw fail("head_count \(headCount) is not a multiple of head_count_kv \(kvHeadCount)")
        }
        guard ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw fail("rope dimension \(ropeDim) must be even and at most the head size \(headDim)")
        }
        guard !isMoE || (expertsUsed > 0 && expertsUsed <= expertCount) else {
            throw fail("expert_used_count \(expertsUsed) must be in 1...\(expertCount)")
        }
        guard vocabularySize > 0 else { throw fail("the vocabulary is empty") }
    }
}

/// Typed access to metadata with errors that name the file and key.
struct MetadataReader {
    let file: GGUFFile

    func string(_ key: String) throws -> String {
        guard let value = try file.require(key).string else { throw wrongType(key, "a string") }
        return value
    }

    func int(_ key: String) throws -> Int {
        guard let value = try file.require(key).int else { throw wrongType(key, "an integer") }
        return value
    }

    func optionalInt(_ key: String) -> Int? { file.metadata[key]?.int }
    func optionalFloat(_ key: String) -> Float? { file.metadata[key]?.float }
    func optionalBool(_ key: String) -> Bool? { file.metadata[key]?.bool }
    func optionalString(_ key: String) -> String? { file.metadata[key]?.string }

    private func wrongType(_ key: String, _ expected: String) -> GGUFError {
        GGUFError(.invalidValue, "\(file.path): metadata '\(key)' is \(String(describing: file.metadata[key]!)); expected \(expected)")
    }
}
