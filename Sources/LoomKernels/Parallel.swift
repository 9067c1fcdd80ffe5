import Dispatch

/// Splits work over a fixed number of threads. Each call blocks until all
/// slices are done, so buffers handed to the body stay valid throughout.
public struct Parallel: Sendable {
    public let threads: Int

    public init(threads: Int) {
        precondition(threads >= 1, "a Parallel needs at least one thread")
        self.threads = threads
    }

    /// Calls `body(range)` for disjoint slices that cover `0..<count`, at
    /// most `threads` at once. Slices are rounded to `granularity` items so
    /// each thread gets a worthwhile amount of work.
    public func forEachSlice(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let units = (count + granularity - 1) / granularity
        let parts = min(threads, units)
        if parts == 1 {
            body(0..<count)
            return
        }
        let perPart = (units + parts - 1) / parts * granularity
        withoutActuallyEscaping(body) { body in
            let shared = SliceBody(body: body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let start = part * perPart
                let end = min(count, start + perPart)
                if start < end { shared.body(start..<end) }
            }
        }
    }
}

/// Carries a non-Sendable body into `concurrentPerform`.
///
/// `@unchecked Sendable`: `concurrentPerform` returns only after every
/// iteration finished, so the body and what it captures outlive all uses, and
/// each iteration gets a disjoint slice — the kernels called from bodies write
/// only the outputs of their own slice and read shared inputs.
private struct SliceBody: @unchecked Sendable {
    let body: (Range<Int>) -> Void
}
