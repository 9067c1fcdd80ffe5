import LoomKernels

/// A llama-family transformer (llama, Mistral, Qwen2, Mixtral and Qwen-MoE)
/// over weights mapped from a GGUF file. One instance runs one step at a
/// time: it owns the activation buffers its steps reuse.
public final class Transformer {
    /// The shape this process computes: the whole model's, or in a
    /// tensor-parallel group its shard's heads and intermediate columns
    /// (the residual width, layers and vocabulary are always the model's).
    public let config: ModelConfig
    /// Which part of the model this process holds.
    public let shard: TensorShard
    public let weights: ModelWeights
    public let file: GGUFFile
    public let parallel: Parallel
    /// What one pass does, step by step.
    public var plan: ForwardPlan
    /// What stands behind the plan's steps that may leave the process: the
    /// MoE layers' experts, and the tensor-parallel all-reduces.
    public var experts: any ExpertBackend
    public var collective: any Collective = SingleProcess()
    let scratch: ForwardScratch
    /// This process's query heads by the KV head they read (local indices):
    /// a shard's groups need not be equal, so attention runs per group.
    let attentionGroups: [AttentionGroup]

    /// Largest number of tokens one pass computes; larger batches run in chunks.
    public var maxBatchTokens: Int { scratch.capacity }
    public var maxLogitRows: Int { scratch.maxLogitRows }

    public init(file: GGUFFile, threads: Int, maxBatchTokens: Int = 256, maxLogitRows: Int = 64, shard: TensorShard? = nil) throws {
        let whole = try ModelConfig(gguf: file)
        let shard = shard ?? .whole(whole)
        let weights = try ModelWeights(gguf: file, config: whole, shard: shard)
        let config = whole.sharded(shard)
        self.config = config
        self.shard = shard
        self.attentionGroups = AttentionGroup.of(shard, whole: whole)
        self.weights = weights
        self.file = file
        self.parallel = Parallel(threads: threads)
        self.scratch = ForwardScratch(config: config, capacity: maxBatchTokens, maxLogitRows: maxLogitRows)
        self.experts = LocalExperts(config: config, weights: weights)
        self.plan = ForwardPlan(layers: weights.layers)
    }

    public convenience init(path: String, threads: Int, maxBatchTokens: Int = 256, maxLogitRows: Int = 64, shard: TensorShard? = nil) throws {
        try self.init(file: GGUFFile(path: path), threads: threads, maxBatchTokens: maxBatchTokens, maxLogitRows: maxLogitRows, shard: shard)
    }

    /// Runs the batch, writing its keys and values into `kv`, and returns the
    /// logits of `batch.logitRows` (rows of `vocabularySize` floats, in order).
    /// The returned buffer is valid until the next call.
    public func forward(_ batch: ForwardBatch, kv: KVCacheMemory) throws -> UnsafeBufferPointer<Float> {
        try validate(batch, kv: kv)
        try collective.beginStep(batch)
        do {
            try runChunks(batch, kv: kv)
        } catch {
            collective.abandon(error)
            throw error
        }
        let vocab = config.vocabularySize
        return UnsafeBufferPointer(start: scratch.logits, count: batch.logitRows.count * vocab)
    }

    /// The batch in chunks of at most `maxBatchTokens`, then the logits
    /// gathered to the leader.
    private func runChunks(_ batch: ForwardBatch, kv: KVCacheMemory) throws {
        let vocab = config.vocabularySize
        var emitted = 0
        var start = 0
        while start < batch.count {
            let end = min(batch.count, start + maxBatchTokens)
            let rows = batch.logitRows[emitted...].prefix { $0 < end }
            try runChunk(batch, start..<end, kv: kv, logitRows: Array(rows), logitsOut: scratch.logits + emitted * vocab)
            emitted += rows.count
            start = end
        }
        try collective.gatherLogits(scratch.logits, rows: batch.logitRows.count)
    }

    private func runChunk(
        _ batch: ForwardBatch, _ range: Range<Int>, kv: KVCacheMemory,
        logitRows: [Int], logitsOut: UnsafeMutablePointer<Float>
    ) throws {
        let step = StepContext(batch: batch, range: range, kv: kv)
        let n = step.count
        for planned in plan.steps {
            switch planned {
            case .embed: embed(step)
            case .attention(let layer): attention(layer, step)
            case .feedForward(let layer): denseFeedForward(layer, tokens: n)
            case .experts(let layer): try mixtureOfExperts(layer, tokens: n)
            case .allReduce(let point):
                try collective.allReduce(point, UnsafeMutableBufferPointer(start: scratch.delta, count: n * config.embeddingLength))
            case .residual: addResidual(n)
            case .logits: logits(of: logitRows.map { $0 - range.lowerBound }, into: logitsOut)
            }
        }
    }

    private func embed(_ step: StepContext) {
        let d = config.embeddingLength
        for (row, index) in step.range.enumerated() {
            weights.tokenEmbedding.row(Int(step.batch.tokens[index]), into: scratch.hidden + row * d)
        }
    }

    /// The final norm of `rows` (chunk-relative), then the output projection.
    private func logits(of rows: [Int], into out: UnsafeMutablePointer<Float>) {
        let d = config.embeddingLength
        for (i, row) in rows.enumerated() {
            Kernels.rmsNorm(
                scratch.hidden + row * d, weight: weights.outputNorm.values, into: scratch.normed + i * d,
                count: d, eps: config.normEpsilon)
        }
        // A rank's output head is its vocabulary rows: its logits land in
        // their columns, and the leader gathers the rest.
        Kernels.matmul(
            weights.output, scratch.normed, ldx: d, tokens: rows.count,
            into: out + shard.vocabulary.lowerBound, ldy: config.vocabularySize, rounded: scratch.rounded, parallel: parallel)
    }

    /// Runs `body` for each token of a step: across the pool when a prefill
    /// chunk brings enough tokens to pay for the hand-off, on this thread for
    /// decode-sized steps. Bodies touch only their own token's rows.
    func forEachToken(_ n: Int, _ body: (Int) -> Void) {
        guard n >= 16 else {
            for i in 0..<n { body(i) }
            return
        }
        parallel.forEachSlice(n, granularity: 4) { slice in
            for i in slice { body(i) }
        }
    }

    private func validate(_ batch: ForwardBatch, kv: KVCacheMemory) throws {
        guard batch.positions.count == batch.count, batch.sequenceIndex.count == batch.count else {
            throw ModelError(.invalidBatch, "batch has \(batch.count) tokens but \(batch.positions.count) positions and \(batch.sequenceIndex.count) sequence indices")
        }
        guard batch.logitRows.count <= maxLogitRows else {
            throw ModelError(.invalidBatch, "batch asks for \(batch.logitRows.count) logit rows; at most \(maxLogitRows) per step")
        }
        guard zip(batch.logitRows, batch.logitRows.dropFirst()).allSatisfy({ $0 < $1 }),
              batch.logitRows.allSatisfy({ (0..<batch.count).contains($0) }) else {
            throw ModelError(.invalidBatch, "logit rows must be increasing token indices within the batch")
        }
        for i in 0..<batch.count {
            try validateToken(batch, i, kv: kv)
        }
    }

    private func validateToken(_ batch: ForwardBatch, _ i: Int, kv: KVCacheMemory) throws {
        let token = batch.tokens[i], position = Int(batch.positions[i]), s = Int(batch.sequenceIndex[i])
        guard token >= 0, Int(token) < config.vocabularySize else {
            throw ModelError(.invalidToken, "token id \(token) is outside the vocabulary (0..<\(config.vocabularySize))")
        }
        guard batch.sequences.indices.contains(s) else {
            throw ModelError(.invalidBatch, "token \(i) names sequence \(s) but the batch has \(batch.sequences.count)")
        }
        let table = batch.sequences[s].blockTable
        guard position >= 0, position / kv.layout.blockSize < table.count else {
            throw ModelError(.contextOverflow, "position \(position) is beyond the \(table.count * kv.layout.blockSize) slots reserved for sequence \(s)")
        }
        guard table[...(position / kv.layout.blockSize)].allSatisfy({ $0 >= 0 && Int($0) < kv.blockCount }) else {
            throw ModelError(.invalidBatch, "sequence \(s) names a KV block outside 0..<\(kv.blockCount)")
        }
    }
}

/// What every block of one step needs to know about the batch.
struct StepContext {
    let batch: ForwardBatch
    let range: Range<Int>
    let kv: KVCacheMemory
    var count: Int { range.count }
}

/// Query heads `queries` (local) attend with local KV head `kv`.
struct AttentionGroup: Equatable {
    let queries: Range<Int>
    let kv: Int

    static func of(_ shard: TensorShard, whole c: ModelConfig) -> [AttentionGroup] {
        let group = c.headCount / c.kvHeadCount
        return shard.kvHeads.enumerated().map { local, kv in
            let queries = shard.queryHeads.clamped(to: kv * group..<(kv + 1) * group)
            return AttentionGroup(
                queries: queries.lowerBound - shard.queryHeads.lowerBound..<queries.upperBound - shard.queryHeads.lowerBound, kv: local)
        }
    }
}
