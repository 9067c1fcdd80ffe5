import LoomKernels

/// A norm or bias vector, dequantized to floats once at load (they are tiny).
public struct Vector: Sendable {
    public let values: [Float]
}

/// The feed-forward block of one layer: a dense SwiGLU FFN, or a sparse
/// mixture of experts with an optional always-on shared expert.
public enum FeedForward: Sendable {
    case dense(gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix)
    case experts(MoEWeights)
}

public struct MoEWeights: Sendable {
    /// Router: one row per expert.
    public let router: WeightMatrix
    /// Expert e's matrices are `gate.slice(e, rows: ff)` etc.
    public let gate: WeightMatrix
    public let up: WeightMatrix
    public let down: WeightMatrix
    public let shared: (gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix)?
    /// Qwen-MoE scales the shared expert by sigmoid(x · sharedGate).
    public let sharedGate: WeightMatrix?
}

public struct LayerWeights: Sendable {
    public let attentionNorm: Vector
    public let q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, output: WeightMatrix
    public let qBias: Vector?, kBias: Vector?, vBias: Vector?
    public let ffnNorm: Vector
    public let feedForward: FeedForward
}

/// Every tensor of a llama-family model, bound once at load to its place in
/// the file mapping. Names are the GGUF checkpoint names (llama.cpp's
/// `LLM_TENSOR_*`), written next to the field they fill.
public struct ModelWeights: Sendable {
    public let tokenEmbedding: WeightMatrix   // token_embd.weight [d, vocab]
    public let outputNorm: Vector             // output_norm.weight [d]
    public let output: WeightMatrix           // output.weight, or token_embd when tied
    public let ropeFrequencyFactors: Vector?  // rope_freqs.weight (Llama 3.1 long context)
    public let layers: [LayerWeights]
    /// Owns the eight-row copies of the 4-bit matrices.
    public let packing: PackedWeights

    public init(gguf: GGUFFile, config c: ModelConfig) throws {
        packing = PackedWeights(mapping: gguf.mapping)
        let t = TensorBinder(file: gguf, packing: packing)
        tokenEmbedding = try t.matrix("token_embd.weight", cols: c.embeddingLength, rows: c.vocabularySize)
        outputNorm = try t.vector("output_norm.weight", count: c.embeddingLength)
        output = gguf.info("output.weight") == nil
            ? tokenEmbedding
            : try t.matrix("output.weight", cols: c.embeddingLength, rows: c.vocabularySize)
        ropeFrequencyFactors = gguf.info("rope_freqs.weight") == nil
            ? nil : try t.vector("rope_freqs.weight", count: c.ropeDim / 2)
        layers = try (0..<c.layerCount).map { try Self.layer($0, t, c) }
    }

    private static func layer(_ i: Int, _ t: TensorBinder, _ c: ModelConfig) throws -> LayerWeights {
        let p = "blk.\(i)."
        let d = c.embeddingLength
        return LayerWeights(
            attentionNorm: try t.vector(p + "attn_norm.weight", count: d),
            q: try t.matrix(p + "attn_q.weight", cols: d, rows: c.qDim),
            k: try t.matrix(p + "attn_k.weight", cols: d, rows: c.kvDim),
            v: try t.matrix(p + "attn_v.weight", cols: d, rows: c.kvDim),
            output: try t.matrix(p + "attn_output.weight", cols: c.qDim, rows: d),
            qBias: try t.optionalVector(p + "attn_q.bias", count: c.qDim),
            kBias: try t.optionalVector(p + "attn_k.bias", count: c.kvDim),
            vBias: try t.optionalVector(p + "attn_v.bias", count: c.kvDim),
            ffnNorm: try t.vector(p + "ffn_norm.weight", count: d),
            feedForward: c.isMoE ? .experts(try moe(p, t, c)) : .dense(
                gate: try t.matrix(p + "ffn_gate.weight", cols: d, rows: c.feedForwardLength),
                up: try t.matrix(p + "ffn_up.weight", cols: d, rows: c.feedForwardLength),
                down: try t.matrix(p + "ffn_down.weight", cols: c.feedForwardLength, rows: d)))
    }

    private static func moe(_ p: String, _ t: TensorBinder, _ c: ModelConfig) throws -> MoEWeights {
        let d = c.embeddingLength, ff = c.expertFeedForwardLength, n = c.expertCount
        var shared: (WeightMatrix, WeightMatrix, WeightMatrix)?
        if t.file.info(p + "ffn_gate_shexp.weight") != nil {
            let sff = c.sharedExpertFeedForwardLength > 0 ? c.sharedExpertFeedForwardLength : ff
            shared = (
                try t.matrix(p + "ffn_gate_shexp.weight", cols: d, rows: sff),
                try t.matrix(p + "ffn_up_shexp.weight", cols: d, rows: sff),
                try t.matrix(p + "ffn_down_shexp.weight", cols: sff, rows: d))
        }
        return MoEWeights(
            router: try t.matrix(p + "ffn_gate_inp.weight", cols: d, rows: n),
            gate: try t.matrix(p + "ffn_gate_exps.weight", cols: d, rows: ff * n, dims: [d, ff, n]),
            up: try t.matrix(p + "ffn_up_exps.weight", cols: d, rows: ff * n, dims: [d, ff, n]),
            down: try t.matrix(p + "ffn_down_exps.weight", cols: ff, rows: d * n, dims: [ff, d, n]),
            shared: shared,
            sharedGate: t.file.info(p + "ffn_gate_inp_shexp.weight") == nil
                ? nil : try t.matrix(p + "ffn_gate_inp_shexp.weight", cols: d, rows: 1))
    }
}

/// Finds tensors by name and checks their shape and type before binding.
struct TensorBinder {
    let file: GGUFFile
    let packing: PackedWeights

    func matrix(_ name: String, cols: Int, rows: Int, dims: [Int]? = nil) throws -> WeightMatrix {
        let info = try file.requireTensor(name)
        let expected = dims ?? [cols, rows]
        // Trailing unit dimensions carry no layout (a [d] gate is a [d, 1] matrix).
        func trimmed(_ dims: [Int]) -> [Int] { Array(dims.reversed().drop { $0 == 1 }.reversed()) }
        guard trimmed(info.dims) == trimmed(expected) else {
            throw GGUFError(.shapeMismatch, "\(file.path): tensor '\(name)' has shape \(info.dims); expected \(expected)")
        }
        guard info.type.isSupported else {
            throw GGUFError(.unknownTensorType, "\(file.path): tensor '\(name)' has type \(info.type.name), which Loom cannot compute with")
        }
        let matrix = WeightMatrix(type: info.type.rawValue, data: file.bytes(of: info).baseAddress!, rows: rows, cols: cols)
        return packing.pack(matrix)
    }

    func vector(_ name: String, count: Int) throws -> Vector {
        let info = try file.requireTensor(name)
        guard info.elementCount == count else {
            throw GGUFError(.shapeMismatch, "\(file.path): tensor '\(name)' has \(info.elementCount) elements; expected \(count)")
        }
        guard let values = Kernels.dequantize(type: info.type.rawValue, source: file.bytes(of: info).baseAddress!, count: count) else {
            throw GGUFError(.unknownTensorType, "\(file.path): tensor '\(name)' has type \(info.type.name), which Loom cannot read")
        }
        return Vector(values: values)
    }

    func optionalVector(_ name: String, count: Int) throws -> Vector? {
        file.info(name) == nil ? nil : try vector(name, count: count)
    }
}
