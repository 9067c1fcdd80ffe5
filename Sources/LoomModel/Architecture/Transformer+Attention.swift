import CLoomKernels
import LoomKernels

extension Transformer {
    /// Pre-norm self-attention into delta: Wo · attention(rope(Wq x),
    /// rope(Wk x), Wv x) for x = norm(hidden), storing K and V on the way.
    func attention(_ layer: Int, _ step: StepContext) {
        let c = config, w = weights.layers[layer], n = step.count, d = c.embeddingLength
        forEachToken(n) { i in
            Kernels.rmsNorm(
                scratch.hidden + i * d, weight: w.attentionNorm.values, into: scratch.normed + i * d,
                count: d, eps: c.normEpsilon)
        }
        Kernels.matmul(
            [.init(w.q, into: scratch.q, ldy: w.q.rows), .init(w.k, into: scratch.k, ldy: w.k.rows),
             .init(w.v, into: scratch.v, ldy: w.v.rows)],
            scratch.normed, ldx: d, tokens: n, rounded: scratch.rounded, parallel: parallel)
        addBias(w.qBias, to: scratch.q, width: w.q.rows, n)
        addBias(w.kBias, to: scratch.k, width: w.k.rows, n)
        addBias(w.vBias, to: scratch.v, width: w.v.rows, n)
        forEachToken(n) { i in
            let position = Int64(step.batch.positions[step.range.lowerBound + i])
            rope(scratch.q + i * c.qDim, heads: c.headCount, position: position)
            rope(scratch.k + i * c.kvDim, heads: c.kvHeadCount, position: position)
            storeKV(layer, step, token: i)
        }
        attend(layer, step)
        Kernels.matmul(w.output, scratch.attention, ldx: c.qDim, tokens: n, into: scratch.delta, ldy: d, rounded: scratch.rounded, parallel: parallel)
    }

    func addBias(_ bias: Vector?, to out: UnsafeMutablePointer<Float>, width: Int, _ n: Int) {
        guard let bias else { return }
        forEachToken(n) { i in
            let row = out + i * width
            for j in 0..<width { row[j] += bias.values[j] }
        }
    }

    func addResidual(_ n: Int) {
        let d = config.embeddingLength
        forEachToken(n) { i in
            for j in (i * d)..<((i + 1) * d) { scratch.hidden[j] += scratch.delta[j] }
        }
    }

    private func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, position: Int64) {
        let c = config
        let factors = weights.ropeFrequencyFactors
        func run(_ f: UnsafePointer<Float>?) {
            loom_rope(
                x, Int64(heads), Int64(c.headDim), Int64(c.ropeDim), position,
                c.ropeBase, c.ropeScale, c.ropeStyle == .halves ? 1 : 0, f)
        }
        if let factors { factors.values.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
    }

    /// Writes token `i`'s key and value into its slot.
    private func storeKV(_ layer: Int, _ step: StepContext, token i: Int) {
        let layout = step.kv.layout, kvDim = config.kvDim
        let t = step.range.lowerBound + i
        let position = Int(step.batch.positions[t])
        let table = step.batch.sequences[Int(step.batch.sequenceIndex[t])].blockTable
        let block = Int(table[position / layout.blockSize])
        let slot = position % layout.blockSize
        let keys = step.kv.base + block * layout.blockStride + layer * layout.layerStride + slot * kvDim
        loom_store_f16(keys, scratch.k + i * kvDim, Int64(kvDim))
        loom_store_f16(keys + layout.blockSize * kvDim, scratch.v + i * kvDim, Int64(kvDim))
    }

    /// Causal attention of each token over its own sequence's positions
    /// 0...p, one KV group at a time, so each KV head is read once per token.
    private func attend(_ layer: Int, _ step: StepContext) {
        let c = config, groups = attentionGroups
        let scale = 1 / Float(c.headDim).squareRoot()
        let kv = step.kv
        let maxPositions = (step.range.map { Int(step.batch.positions[$0]) }.max() ?? 0) + 1
        let widest = groups.map(\.queries.count).max() ?? 0
        parallel.forEachSlice(step.count * groups.count) { units in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: maxPositions * widest) { scores in
                for unit in units {
                    let i = unit / groups.count, group = groups[unit % groups.count]
                    guard !group.queries.isEmpty else { continue }
                    let t = step.range.lowerBound + i
                    // The group's KV head is head 0 of a layout that starts at it.
                    var layout = loom_kv_layout(
                        base: kv.base + group.kv * c.headDim, block_stride: Int64(kv.layout.blockStride),
                        layer_stride: Int64(kv.layout.layerStride), block_size: Int64(kv.layout.blockSize), kv_dim: Int64(kv.layout.kvDim))
                    let offset = i * c.qDim + group.queries.lowerBound * c.headDim
                    step.batch.sequences[Int(step.batch.sequenceIndex[t])].blockTable.withUnsafeBufferPointer { table in
                        loom_attention(
                            scratch.q + offset, &layout, Int64(layer), table.baseAddress,
                            Int64(step.batch.positions[t]) + 1, 0, Int64(group.queries.count),
                            Int64(group.queries.count), 1, Int64(c.headDim), scale,
                            scores.baseAddress, scratch.attention + offset)
                    }
                }
            }
        }
    }
}
