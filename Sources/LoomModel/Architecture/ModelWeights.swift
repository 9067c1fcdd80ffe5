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

    /// The weights `shard` computes with (the whole model by default): its
    /// rows and columns of every split matrix, copied out of the mapping,
    /// and the embedding table left in the file for lookups.
    public init(gguf: GGUFFile, config c: ModelConfig, shard: TensorShard? = nil) throws {
        let shard = shard ?? .whole(c)
        packing = PackedWeights(mapping: gguf.mapping)
        let t = TensorBinder(file: gguf, packing: packing)
        let d = c.embeddingLength, vocabulary = MatrixSlice(rows: [shard.vocabulary], columns: 0..<d)
        if shard.isWhole {
            tokenEmbedding = try t.matrix("token_embd.weight", cols: d, rows: c.vocabularySize)
            output = gguf.info("output.weight") == nil
                ? tokenEmbedding : try t.matrix("output.weight", cols: d, rows: c.vocabularySize)
        } else {
            // A lookup reads one row: the table stays in the file, paged in
            // by the rows used; only the output head is split.
            tokenEmbedding = try t.unpacked("token_embd.weight", cols: d, rows: c.vocabularySize)
            let head = gguf.info("output.weight") == nil ? "token_embd.weight" : "output.weight"
            output = try t.matrix(head, cols: d, rows: c.vocabularySize, slice: vocabulary)
        }
        outputNorm = try t.vector("output_norm.weight", count: d)
        ropeFrequencyFactors = gguf.info("rope_freqs.weight") == nil
            ? nil : try t.vector("rope_freqs.weight", count: c.ropeDim / 2)
        layers = try (0..<c.layerCount).map { try Self.layer($0, t, c, shard) }
    }

    private static func layer(_ i: Int, _ t: TensorBinder, _ c: ModelConfig, _ s: TensorShard) throws -> LayerWeights {
        let p = "blk.\(i)."
        let d = c.embeddingLength, hd = c.headDim
        let q = TensorShard.rows(s.queryHeads, headDim: hd), kv = TensorShard.rows(s.kvHeads, headDim: hd)
        let ff = s.feedForward
        return LayerWeights(
            attentionNorm: try t.vector(p + "attn_norm.weight", count: d),
            q: try t.matrix(p + "attn_q.weight", cols: d, rows: c.qDim, slice: .init(rows: [q], columns: 0..<d)),
            k: try t.matrix(p + "attn_k.weight", cols: d, rows: c.kvDim, slice: .init(rows: [kv], columns: 0..<d)),
            v: try t.matrix(p + "attn_v.weight", cols: d, rows: c.kvDim, slice: .init(rows: [kv], columns: 0..<d)),
            output: try t.matrix(p + "attn_output.weight", cols: c.qDim, rows: d, slice: .init(rows: [0..<d], columns: q)),
            qBias: try t.optionalVector(p + "attn_q.bias", count: c.qDim, range: q),
            kBias: try t.optionalVector(p + "attn_k.bias", count: c.kvDim, range: kv),
            vBias: try t.optionalVector(p + "attn_v.bias", count: c.kvDim, range: kv),
            ffnNorm: try t.vector(p + "ffn_norm.weight", count: d),
            feedForward: c.isMoE ? .experts(try moe(p, t, c, s)) : .dense(
                gate: try t.matrix(p + "ffn_gate.weight", cols: d, rows: c.feedForwardLength, slice: .init(rows: [ff], columns: 0..<d)),
                up: try t.matrix(p + "ffn_up.weight", cols: d, rows: c.feedForwardLength, slice: .init(rows: [ff], columns: 0..<d)),
                down: try t.matrix(p + "ffn_down.weight", cols: c.feedForwardLength, rows: d, slice: .init(rows: [0..<d], columns: ff))))
    }

    private static func moe(_ p: String, _ t: TensorBinder, _ c: ModelConfig, _ s: TensorShard) throws -> MoEWeights {
        let d = c.embeddingLength, ff = c.expertFeedForwardLength, n = c.expertCount
        var shared: (WeightMatrix, WeightMatrix, WeightMatrix)?
        if t.file.info(p + "ffn_gate_shexp.weight") != nil {
            let sff = c.sharedExpertFeedForwardLength > 0 ? c.sharedExpertFeedForwardLength : ff
            let part = c.sharedExpertFeedForwardLength > 0 ? s.sharedFeedForward : s.expertFeedForward
            shared = (
                try t.matrix(p + "ffn_gate_shexp.weight", cols: d, rows: sff, slice: .init(rows: [part], columns: 0..<d)),
                try t.matrix(p + "ffn_up_shexp.weight", cols: d, rows: sff, slice: .init(rows: [part], columns: 0..<d)),
                try t.matrix(p + "ffn_down_shexp.weight", cols: sff, rows: d, slice: .init(rows: [0..<d], columns: part)))
        }
        let expertRows = MatrixSlice(rows: TensorShard.stacked(s.expertFeedForward, stride: ff, count: n), columns: 0..<d)
        return MoEWeights(
            router: try t.matrix(p + "ffn_gate_inp.weight", cols: d, rows: n),
            gate: try t.matrix(p + "ffn_gate_exps.weight", cols: d, rows: ff * n, dims: [d, ff, n], slice: expertRows),
            up: try t.matrix(p + "ffn_up_exps.weight", cols: d, rows: ff * n, dims: [d, ff, n], slice: expertRows),
            down: try t.matrix(p + "ffn_down_exps.weight", cols: ff, rows: d * n, dims: [ff, d, n], slice: .init(rows: [0..<d * n], columns: s.expertFeedForward)),
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
        packing.pack(try unpacked(name, cols: cols, rows: rows, dims: dims))
    }

    /// The matrix as the file holds it, after checking its shape and type.
    func unpacked(_ name: String, cols: Int, rows: Int, dims: [Int]? = nil) throws -> WeightMatrix {
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
        return WeightMatrix(type: info.type.rawValue, data: file.bytes(of: info).baseAddress!, rows: rows, cols: cols)
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
