/// How a group of `size` ranks splits a model, for any size up to the
/// query head count:
/// - attention by query heads, dealt out evenly, each rank with the KV
///   heads its queries read (a KV head whose group is cut sits on both
///   sides of the cut);
/// - the feed-forward by intermediate columns, cut on `alignment` (the
///   quantization block of the down projection's rows, and the kernels'
///   eight-row groups), sized so attention plus feed-forward is about the
///   same work on every rank;
/// - the output head by vocabulary rows.
public struct TensorSplit: Sendable {
    public let shards: [TensorShard]

    public init(_ c: ModelConfig, size: Int, alignment: Int) throws {
        guard size >= 1 else { throw ModelError(.invalidSplit, "a tensor-parallel group needs at least 1 rank, not \(size)") }
        guard size <= c.headCount else {
            throw ModelError(.invalidSplit, "a group of \(size) ranks cannot split \(c.headCount) query heads: every rank needs at least one; use at most \(c.headCount)")
        }
        let heads = Self.attention(c, size: size)
        let work = heads.map { 2 * ($0.query.count + $0.kv.count) * c.headDim }
        let ffnShare = Self.feedForwardShares(attention: work, feedForward: c.feedForwardLength + c.expertFeedForwardLength * c.expertsUsed + c.sharedExpertFeedForwardLength)
        let ffn = Self.cut(c.feedForwardLength, shares: ffnShare, alignment: alignment)
        let experts = Self.cut(c.expertFeedForwardLength, shares: ffnShare, alignment: alignment)
        let sharedFFN = Self.cut(c.sharedExpertFeedForwardLength, shares: ffnShare, alignment: alignment)
        let vocabulary = Self.cut(c.vocabularySize, shares: Array(repeating: 1, count: size), alignment: 8)
        shards = (0..<size).map { r in
            TensorShard(
                rank: r, size: size, queryHeads: heads[r].query, kvHeads: heads[r].kv, feedForward: ffn[r],
                expertFeedForward: experts[r], sharedFeedForward: sharedFFN[r], vocabulary: vocabulary[r])
        }
    }

    /// Each rank's query heads and the KV heads they read: the query heads
    /// dealt out evenly, and each rank holding every KV head its queries
    /// read, so a KV head whose group straddles two ranks is on both.
    ///
    /// Why not whole KV groups per rank: each layer's two all-reduces are
    /// barriers, so attention has to balance on its own (the FFN after it
    /// cannot make up for it). With 3 KV groups over 2 ranks, whole groups
    /// give 6 query heads against 3; this gives 5 against 4, for the price
    /// of one KV head's projections and cache on two ranks.
    static func attention(_ c: ModelConfig, size: Int) -> [(query: Range<Int>, kv: Range<Int>)] {
        let group = c.headCount / c.kvHeadCount
        return evenCuts(c.headCount, into: size).map { query in
            (query, query.lowerBound / group..<(query.upperBound - 1) / group + 1)
        }
    }

    /// `count` items in `parts` contiguous runs, the longer ones first.
    static func evenCuts(_ count: Int, into parts: Int) -> [Range<Int>] {
        var start = 0
        return (0..<parts).map { p in
            let length = count / parts + (p < count % parts ? 1 : 0)
            defer { start += length }
            return start..<start + length
        }
    }

    /// Each rank's fraction of the feed-forward, so that its attention
    /// (`attention[r]`, in the same units as one intermediate column) plus
    /// its feed-forward evens out. A rank whose attention alone exceeds its
    /// even share gets none.
    static func feedForwardShares(attention: [Int], feedForward: Int) -> [Double] {
        let perColumn = 3.0
        var active = Array(attention.indices)
        while true {
            let total = Double(active.map { attention[$0] }.reduce(0, +)) + perColumn * Double(feedForward)
            let target = total / Double(active.count)
            let over = active.filter { Double(attention[$0]) > target }
            if over.isEmpty || over.count == active.count {
                return attention.indices.map { r in
                    active.contains(r) ? max(0, target - Double(attention[r])) : 0
                }
            }
            active.removeAll { over.contains($0) }
        }
    }

    /// `count` cut into runs in proportion to `shares`, every inner boundary
    /// on a multiple of `alignment`.
    static func cut(_ count: Int, shares: [Double], alignment: Int) -> [Range<Int>] {
        let total = shares.reduce(0, +)
        var bounds = [0]
        var cumulative = 0.0
        for share in shares.dropLast() {
            cumulative += total > 0 ? share / total : 1 / Double(shares.count)
            let ideal = cumulative * Double(count)
            let aligned = Int((ideal / Double(alignment)).rounded()) * alignment
            bounds.append(min(max(aligned, bounds.last!), count))
        }
        bounds.append(count)
        return zip(bounds, bounds.dropFirst()).map { $0..<$1 }
    }
}

extension TensorSplit {
    /// The split of `file`'s model over `size` ranks, cut on the coarsest
    /// quantization block any feed-forward down projection uses.
    public init(file: GGUFFile, size: Int) throws {
        let config = try ModelConfig(gguf: file)
        let downs = file.tensors.filter { $0.name.hasSuffix(".ffn_down.weight") || $0.name.contains(".ffn_down_") }
        let block = downs.map(\.type.blockSize).max() ?? 1
        try self.init(config, size: size, alignment: max(8, block))
    }

    /// What a rank loaded, as its peers compare it: the file's name and size
    /// and the model's shape.
    public static func identity(of file: GGUFFile) -> String {
        let name = file.path.split(separator: "/").last.map(String.init) ?? file.path
        let arch = file.metadata["general.architecture"]?.string ?? "?"
        return "\(name) (\(file.mapping.bytes.count) bytes, \(arch))"
    }
}
