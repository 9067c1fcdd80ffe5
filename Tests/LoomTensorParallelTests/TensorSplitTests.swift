import LoomModel
import LoomTesting
import Testing

/// How a group splits SmolLM2's shape (9 query heads over 3 KV heads,
/// 576 wide, 1536 FFN columns, 49152 tokens) and the edge cases.
@Suite struct TensorSplitTests {
    let smol: ModelConfig

    init() throws {
        var c = try ModelConfig(gguf: GGUFFile(path: TinyModel().write(to: temporaryPath("split.gguf"))))
        (c.layerCount, c.embeddingLength, c.feedForwardLength, c.expertFeedForwardLength) = (30, 576, 1536, 1536)
        (c.headCount, c.kvHeadCount, c.headDim, c.vocabularySize) = (9, 3, 64, 49152)
        smol = c
    }

    func work(_ s: TensorShard, _ c: ModelConfig) -> Int {
        2 * (s.queryHeads.count + s.kvHeads.count) * c.headDim + 3 * s.feedForward.count
    }

    @Test func twoRanksSplitTheQueryHeadsFiveAndFourSharingTheMiddleKVHead() throws {
        let shards = try TensorSplit(smol, size: 2, alignment: 32).shards
        #expect(shards.map(\.queryHeads) == [0..<5, 5..<9])
        #expect(shards.map(\.kvHeads) == [0..<2, 1..<3], "KV head 1 serves query heads on both ranks")
        #expect(shards[0].feedForward.upperBound == shards[1].feedForward.lowerBound)
        #expect(shards[1].feedForward.upperBound == 1536 && shards[0].feedForward.lowerBound == 0)
        #expect(shards[0].feedForward.upperBound % 32 == 0, "cut on a quantization block")
        #expect(shards[0].feedForward.count <= shards[1].feedForward.count, "the rank with more attention gets no more FFN")
        let (a, b) = (work(shards[0], smol), work(shards[1], smol))
        #expect(abs(a - b) <= 3 * 32, "work \(a) against \(b)")
        #expect(shards.map(\.vocabulary) == [0..<24576, 24576..<49152])
    }

    @Test func fourRanksReplicateKVHeadsWhereTheirGroupsAreCut() throws {
        let shards = try TensorSplit(smol, size: 4, alignment: 32).shards
        #expect(shards.map(\.queryHeads) == [0..<3, 3..<5, 5..<7, 7..<9])
        #expect(shards.map(\.kvHeads) == [0..<1, 1..<2, 1..<3, 2..<3])
        #expect(shards.reduce(0) { $0 + $1.feedForward.count } == 1536)
        #expect(zip(shards, shards.dropFirst()).allSatisfy { $0.feedForward.upperBound == $1.feedForward.lowerBound })
    }

    @Test func threeRanksTakeAKVGroupEach() throws {
        let shards = try TensorSplit(smol, size: 3, alignment: 32).shards
        #expect(shards.map(\.queryHeads) == [0..<3, 3..<6, 6..<9])
        #expect(shards.map(\.kvHeads) == [0..<1, 1..<2, 2..<3])
    }

    @Test func everySizeUpToTheHeadsCoversEveryHeadColumnAndToken() throws {
        for size in 1...9 {
            let shards = try TensorSplit(smol, size: size, alignment: 32).shards
            #expect(shards.flatMap { Array($0.queryHeads) } == Array(0..<9), "size \(size)")
            #expect(Set(shards.flatMap { Array($0.kvHeads) }) == [0, 1, 2])
            #expect(shards.flatMap { Array($0.feedForward) } == Array(0..<1536))
            #expect(shards.flatMap { Array($0.vocabulary) } == Array(0..<49152))
            for s in shards {
                let group = smol.headCount / smol.kvHeadCount
                #expect(s.queryHeads.allSatisfy { s.kvHeads.contains($0 / group) }, "rank \(s.rank) of \(size) holds the KV heads its queries read")
            }
        }
        #expect(try TensorSplit(smol, size: 1, alignment: 32).shards == [TensorShard.whole(smol)])
    }

    @Test func moreRanksThanQueryHeadsIsRefusedWithTheLimit() {
        #expect(throws: ModelError(.invalidSplit, "a group of 10 ranks cannot split 9 query heads: every rank needs at least one; use at most 9")) {
            try TensorSplit(smol, size: 10, alignment: 32)
        }
        #expect(throws: ModelError.self) { try TensorSplit(smol, size: 0, alignment: 32) }
    }

    @Test func theShardsConfigHasItsHeadsAndColumnsAndTheWholeVocabulary() throws {
        let shard = try TensorSplit(smol, size: 2, alignment: 32).shards[1]
        let local = smol.sharded(shard)
        #expect(local.headCount == 4 && local.kvHeadCount == 2 && local.qDim == 256 && local.kvDim == 128)
        #expect(local.feedForwardLength == shard.feedForward.count)
        #expect(local.vocabularySize == 49152 && local.embeddingLength == 576)
    }
}
