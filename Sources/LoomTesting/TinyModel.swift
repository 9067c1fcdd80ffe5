import LoomModel

/// Builds tiny llama-family models with seeded random weights, written as
/// real GGUF files, so unit tests run the whole model path without a download.
/// Every tensor's values depend only on the seed and the tensor's name: two
/// specs that share a tensor name share its weights (the MoE-equals-dense
/// test relies on that).
public struct TinyModel: Sendable {
    public var architecture = "llama"
    public var layers = 2
    public var embedding = 64
    public var heads = 4
    public var kvHeads = 2
    public var feedForward = 128
    public var context = 256
    public var weightType: GGMLType = .f32
    public var experts = 0
    public var expertsUsed = 0
    /// Every expert gets the dense FFN's weights and the router is zero, so
    /// routing is uniform and the MoE layer must equal the dense one.
    public var expertsCopyDense = false
    public var sharedExpert = false
    public var qkvBias = false
    public var tiedOutput = true
    public var ropeBase: Float = 10_000
    public var seed: UInt64 = 1
    public var extraVocabulary = 0

    public init() {}

    public static let vocabulary = ByteLevelVocabulary.tokens
    public var vocabularySize: Int { Self.vocabulary.count + extraVocabulary }

    public func gguf() -> GGUFWriter {
        var w = GGUFWriter()
        let a = architecture
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("tiny-\(a)"))
        w.set("\(a).block_count", .uint32(UInt32(layers)))
        w.set("\(a).context_length", .uint32(UInt32(context)))
        w.set("\(a).embedding_length", .uint32(UInt32(embedding)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(feedForward)))
        w.set("\(a).attention.head_count", .uint32(UInt32(heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads)))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("\(a).rope.freq_base", .float32(ropeBase))
        if experts > 0 {
            w.set("\(a).expert_count", .uint32(UInt32(experts)))
            w.set("\(a).expert_used_count", .uint32(UInt32(expertsUsed)))
            w.set("\(a).expert_feed_forward_length", .uint32(UInt32(feedForward)))
            if sharedExpert { w.set("\(a).expert_shared_feed_forward_length", .uint32(UInt32(feedForward))) }
        }
        ByteLevelVocabulary.write(into: &w, extra: extraVocabulary)
        addTensors(&w)
        return w
    }

    /// Writes the model to `path` and returns the path.
    @discardableResult
    public func write(to path: String) throws -> String {
        try gguf().write(to: path)
        return path
    }

    private func addTensors(_ w: inout GGUFWriter) {
        let d = embedding, headDim = embedding / heads
        let q = heads * headDim, kv = kvHeads * headDim, ff = feedForward
        matrix(&w, "token_embd.weight", [d, vocabularySize])
        norm(&w, "output_norm.weight", d)
        if !tiedOutput { matrix(&w, "output.weight", [d, vocabularySize]) }
        for i in 0..<layers {
            let p = "blk.\(i)."
            norm(&w, p + "attn_norm.weight", d)
            matrix(&w, p + "attn_q.weight", [d, q])
            matrix(&w, p + "attn_k.weight", [d, kv])
            matrix(&w, p + "attn_v.weight", [d, kv])
            matrix(&w, p + "attn_output.weight", [q, d])
            if qkvBias {
                vector(&w, p + "attn_q.bias", q)
                vector(&w, p + "attn_k.bias", kv)
                vector(&w, p + "attn_v.bias", kv)
            }
            norm(&w, p + "ffn_norm.weight", d)
            if experts == 0 {
                matrix(&w, p + "ffn_gate.weight", [d, ff])
                matrix(&w, p + "ffn_up.weight", [d, ff])
                matrix(&w, p + "ffn_down.weight", [ff, d])
            } else {
                addExperts(&w, prefix: p)
            }
        }
    }

    private func addExperts(_ w: inout GGUFWriter, prefix p: String) {
        let d = embedding, ff = feedForward, n = experts
        if expertsCopyDense {
            w.addTensor(name: p + "ffn_gate_inp.weight", dims: [d, n], type: .f32, values: [Float](repeating: 0, count: d * n))
            for (name, dense, dims) in [("gate", "ffn_gate", [d, ff]), ("up", "ffn_up", [d, ff]), ("down", "ffn_down", [ff, d])] {
                let values = random(p + dense + ".weight", count: dims[0] * dims[1])
                w.addTensor(name: p + "ffn_\(name)_exps.weight", dims: dims + [n], type: weightType,
                            values: Array([[Float]](repeating: values, count: n).joined()))
            }
        } else {
            matrix(&w, p + "ffn_gate_inp.weight", [d, n], type: .f32)
            matrix(&w, p + "ffn_gate_exps.weight", [d, ff, n])
            matrix(&w, p + "ffn_up_exps.weight", [d, ff, n])
            matrix(&w, p + "ffn_down_exps.weight", [ff, d, n])
        }
        if sharedExpert {
            vector(&w, p + "ffn_gate_inp_shexp.weight", d)
            matrix(&w, p + "ffn_gate_shexp.weight", [d, ff])
            matrix(&w, p + "ffn_up_shexp.weight", [d, ff])
            matrix(&w, p + "ffn_down_shexp.weight", [ff, d])
        }
    }

    private func matrix(_ w: inout GGUFWriter, _ name: String, _ dims: [Int], type: GGMLType? = nil) {
        w.addTensor(name: name, dims: dims, type: type ?? weightType, values: random(name, count: dims.reduce(1, *)))
    }

    private func vector(_ w: inout GGUFWriter, _ name: String, _ count: Int) {
        w.addTensor(name: name, dims: [count], type: .f32, values: random(name, count: count))
    }

    private func norm(_ w: inout GGUFWriter, _ name: String, _ count: Int) {
        w.addTensor(name: name, dims: [count], type: .f32, values: random(name, count: count).map { 1 + $0 })
    }

    /// Uniform in ±0.15: large enough that layers change the logits visibly,
    /// small enough that nothing saturates.
    func random(_ name: String, count: Int) -> [Float] {
        var generator = SeededGenerator(seed: seed ^ fnv1a(name))
        return (0..<count).map { _ in Float.random(in: -0.15...0.15, using: &generator) }
    }

    private func fnv1a(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }
}

/// SplitMix64: deterministic across platforms, for test data only.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
