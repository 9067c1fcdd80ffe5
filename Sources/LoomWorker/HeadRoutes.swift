import LoomModel
import LoomTransfer
import NIOCore

/// Which KV heads each prefill rank sends to each decode rank, when either
/// worker is a tensor-parallel group. A head goes from the first prefill
/// rank that holds it (a head replicated over ranks is sent once) to every
/// decode rank that holds it.
struct HeadRoutes: Equatable {
    /// `sends[p][d]`: the heads prefill rank `p` writes into decode rank
    /// `d`'s pool (`0..<0`: nothing).
    let sends: [[Range<Int>]]

    init(prefill: [Range<Int>], decode: [Range<Int>]) {
        // Ranks hold ascending, contiguous ranges, so the heads a rank is
        // the first to hold are contiguous too.
        var firsts: [Range<Int>] = []
        var covered = 0
        for heads in prefill {
            let start = max(heads.lowerBound, covered)
            firsts.append(start < heads.upperBound ? start..<heads.upperBound : start..<start)
            covered = max(covered, heads.upperBound)
        }
        sends = firsts.map { mine in
            decode.map { theirs in
                let low = max(mine.lowerBound, theirs.lowerBound), high = min(mine.upperBound, theirs.upperBound)
                return low < high ? low..<high : 0..<0
            }
        }
    }

    /// Writes counted at the decode worker's rank 0 for each exported
    /// chunk: one per (prefill rank, decode rank) pair with heads to send.
    var writesPerChunk: Int { sends.reduce(0) { $0 + $1.filter { !$0.isEmpty }.count } }
}

/// One prefill rank's heads of a chunk of blocks, cut into the places they
/// go in one decode rank's blocks. Blocks are `[layer][K, V][slot][kvDim]`
/// halves, so a head is one run of `headDim` halves per slot; runs that
/// meet in the destination block (all of a rank's heads, consecutive
/// slots) merge into one segment.
struct HeadScatter {
    let layers: Int
    let blockSize: Int
    let headDim: Int
    /// The heads of the source rank's blocks, and of the destination's.
    let source: Range<Int>
    let destination: Range<Int>
    /// The heads sent, in both.
    let heads: Range<Int>

    var sourceBlockBytes: Int { layers * 2 * blockSize * source.count * headDim * 2 }
    var destinationBlockBytes: Int { layers * 2 * blockSize * destination.count * headDim * 2 }

    /// The bytes to send, packed in the order of `runs`: each run an
    /// offset in the destination region and a length.
    func pack(_ chunk: UnsafeRawBufferPointer, into pages: some Collection<Int>) -> (bytes: ByteBuffer, runs: [(offset: Int, count: Int)]) {
        let run = heads.count * headDim * 2
        let sourceRow = source.count * headDim * 2, destinationRow = destination.count * headDim * 2
        let sourceSkip = (heads.lowerBound - source.lowerBound) * headDim * 2
        let destinationSkip = (heads.lowerBound - destination.lowerBound) * headDim * 2
        let rows = layers * 2 * blockSize, total = pages.count * rows * run
        var bytes = ByteBufferAllocator().buffer(capacity: total)
        var runs: [(offset: Int, count: Int)] = []
        bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            var packed = 0
            for (i, page) in pages.enumerated() {
                // Runs merge within a block only: a decode worker admits
                // each segment into one of the pages it leased.
                let firstOfBlock = runs.count
                for row in 0..<rows {
                    let from = i * sourceBlockBytes + row * sourceRow + sourceSkip
                    let to = page * destinationBlockBytes + row * destinationRow + destinationSkip
                    (out.baseAddress! + packed).copyMemory(from: chunk.baseAddress! + from, byteCount: run)
                    packed += run
                    if runs.count > firstOfBlock, let last = runs.last, last.offset + last.count == to {
                        runs[runs.count - 1].count += run
                    } else {
                        runs.append((to, run))
                    }
                }
            }
            return total
        }
        return (bytes, runs)
    }

    /// One write of the chunk's runs. A write of many runs is cut into
    /// parts by the tcp backend, each naming the lease's immediate.
    func operation(_ chunk: UnsafeRawBufferPointer, pages: some Collection<Int>, to region: RegionDescriptor, immediate: UInt32?) throws(TransferError) -> WriteOperation {
        let (bytes, runs) = pack(chunk, into: pages)
        return try .scattered(bytes, to: region, runs: runs, immediate: immediate)
    }
}
