import LoomTransfer
import NIOCore
import Testing
@testable import LoomWorker

/// How a prompt's KV heads are dealt from prefill ranks to decode ranks,
/// and that the scattered bytes rebuild each decode rank's blocks exactly.
@Suite struct HeadRoutesTests {
    @Test func eachHeadIsSentOnceByTheFirstRankThatHoldsIt() {
        // 2 prefill ranks over 3 heads (2 + 1) to 3 decode ranks (1 each).
        let two = HeadRoutes(prefill: [0..<2, 2..<3], decode: [0..<1, 1..<2, 2..<3])
        #expect(two.sends == [[0..<1, 1..<2, 0..<0], [0..<0, 0..<0, 2..<3]])
        #expect(two.writesPerChunk == 3)
        // 4 prefill ranks replicate heads (0, 1, 1, 2 and so on): a
        // replicated head goes from its first holder only.
        let four = HeadRoutes(prefill: [0..<1, 0..<1, 1..<2, 2..<3], decode: [0..<3])
        #expect(four.sends.map { $0[0] } == [0..<1, 0..<0, 1..<2, 2..<3])
        #expect(four.writesPerChunk == 3)
        // Alone to alone: one write.
        #expect(HeadRoutes(prefill: [0..<3], decode: [0..<3]).writesPerChunk == 1)
    }

    /// Blocks of `heads` whose every half says (block, layer, K/V, slot, head, lane).
    func blocks(_ count: Int, heads: Range<Int>, scatter s: HeadScatter) -> [UInt16] {
        var halves: [UInt16] = []
        for block in 0..<count {
            for row in 0..<(s.layers * 2 * s.blockSize) {
                for head in heads {
                    for lane in 0..<s.headDim { halves.append(UInt16(truncatingIfNeeded: block * 4096 + row * 64 + head * 8 + lane)) }
                }
            }
        }
        return halves
    }

    /// Every run lands where the decode rank's own layout puts that head;
    /// nothing else in its blocks is touched.
    @Test(arguments: [
        (prefill: [0..<2, 2..<3], decode: [0..<1, 1..<2, 2..<3]),
        (prefill: [0..<1, 1..<2, 2..<3], decode: [0..<2, 2..<3]),
        (prefill: [0..<1, 0..<1, 1..<2, 2..<3], decode: [0..<3]),
        (prefill: [0..<3], decode: [0..<1, 0..<1, 1..<2, 2..<3]),
    ])
    func scatteredHeadsRebuildEveryDecodeRanksBlocks(prefill: [Range<Int>], decode: [Range<Int>]) throws {
        let routes = HeadRoutes(prefill: prefill, decode: decode)
        let pages = [3, 0]
        for (d, theirs) in decode.enumerated() {
            let template = HeadScatter(layers: 2, blockSize: 4, headDim: 8, source: theirs, destination: theirs, heads: theirs)
            var landed = [UInt16](repeating: 0xFFFF, count: 4 * template.destinationBlockBytes / 2)
            for (p, mine) in prefill.enumerated() where !routes.sends[p][d].isEmpty {
                let scatter = HeadScatter(layers: 2, blockSize: 4, headDim: 8, source: mine, destination: theirs, heads: routes.sends[p][d])
                let (bytes, runs) = blocks(2, heads: mine, scatter: scatter).withUnsafeBytes { scatter.pack($0, into: pages) }
                var at = bytes.readerIndex
                for run in runs {
                    #expect(run.offset / scatter.destinationBlockBytes == (run.offset + run.count - 1) / scatter.destinationBlockBytes, "a run stays in one block")
                    landed.withUnsafeMutableBytes { out in
                        bytes.withUnsafeReadableBytes { src in
                            (out.baseAddress! + run.offset).copyMemory(from: src.baseAddress! + (at - bytes.readerIndex), byteCount: run.count)
                        }
                    }
                    at += run.count
                }
            }
            // Sequence block i went to pool page pages[i]; pages 1 and 2 stay untouched.
            let expected = blocks(2, heads: theirs, scatter: template)
            let per = template.destinationBlockBytes / 2
            for (i, page) in pages.enumerated() {
                #expect(Array(landed[(page * per)..<((page + 1) * per)]) == Array(expected[(i * per)..<((i + 1) * per)]), "decode rank \(d), block \(i)")
            }
            #expect(landed[per..<(3 * per)].allSatisfy { $0 == 0xFFFF })
        }
    }

    @Test func wholeRanksMergeIntoOneSegmentPerBlock() throws {
        let scatter = HeadScatter(layers: 2, blockSize: 4, headDim: 8, source: 0..<2, destination: 0..<1, heads: 0..<1)
        let chunk = blocks(2, heads: 0..<2, scatter: scatter)
        let (_, runs) = chunk.withUnsafeBytes { scatter.pack($0, into: [5, 6]) }
        #expect(runs.map(\.offset) == [5 * scatter.destinationBlockBytes, 6 * scatter.destinationBlockBytes])
        #expect(runs.allSatisfy { $0.count == scatter.destinationBlockBytes })
    }
}
