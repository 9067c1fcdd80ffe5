import Dispatch
import LoomKernels
import Testing

/// The worker pool behind `Parallel`: ops from several threads and ops
/// started from inside a slice must neither deadlock nor lose slices.
@Suite struct ParallelTests {
    @Test func nestedCallsRunInlineAndCoverEverything() {
        let parallel = Parallel(threads: 2)
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: 8 * 10)
        hits.initialize(repeating: 0, count: 80)
        defer { hits.deallocate() }
        parallel.forEachSlice(8) { outer in
            for i in outer {
                parallel.forEachSlice(10, granularity: 3) { inner in
                    for j in inner { hits[i * 10 + j] += 1 }
                }
            }
        }
        #expect((0..<80).allSatisfy { hits[$0] == 1 })
    }

    @Test func callersOnManyThreadsShareOnePool() {
        let parallel = Parallel(threads: 3)
        let callers = 6, count = 1000
        let sums = UnsafeMutablePointer<Int>.allocate(capacity: callers * count)
        sums.initialize(repeating: 0, count: callers * count)
        defer { sums.deallocate() }
        let box = UnsafeSendable(sums)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for _ in 0..<50 {
                parallel.forEachSlice(count, granularity: 7) { range in
                    for i in range { box.pointer[caller * count + i] += 1 }
                }
            }
        }
        #expect((0..<(callers * count)).allSatisfy { sums[$0] == 50 })
    }
}

/// `@unchecked Sendable`: each caller writes only its own stripe of the buffer.
private struct UnsafeSendable: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int>
    init(_ pointer: UnsafeMutablePointer<Int>) { self.pointer = pointer }
}
