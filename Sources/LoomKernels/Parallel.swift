import CLoomKernels

/// Splits work over a persistent pool of threads. Each call blocks until all
/// slices are done, so buffers handed to the body stay valid throughout.
/// Copies share one pool; it stops when the last copy goes away.
public struct Parallel: Sendable {
    public let threads: Int
    private let pool: WorkerPool

    public init(threads: Int) {
        precondition(threads >= 1, "a Parallel needs at least one thread")
        self.threads = threads
        self.pool = WorkerPool(threads: threads)
    }

    /// Calls `body(range)` for disjoint slices that cover `0..<count`, at
    /// most `threads` at once. Slices are multiples of `granularity` items;
    /// there are a few more slices than threads, handed out in order, so a
    /// thread that loses its core to another process leaves less behind.
    public func forEachSlice(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let units = (count + granularity - 1) / granularity
        let parts = min(threads == 1 ? 1 : threads * 3, units)
        if parts == 1 {
            body(0..<count)
            return
        }
        let perPart = (units + parts - 1) / parts * granularity
        let slices = (count + perPart - 1) / perPart
        withoutActuallyEscaping(body) { body in
            var job = SliceJob(body: body, perPart: perPart, count: count)
            withUnsafeMutablePointer(to: &job) { job in
                loom_pool_run(pool.pool, { ctx, part in
                    let job = ctx!.assumingMemoryBound(to: SliceJob.self).pointee
                    let start = Int(part) * job.perPart
                    job.body(start..<min(job.count, start + job.perPart))
                }, job, Int64(slices))
            }
        }
    }
}

/// What the C trampoline needs to find a slice's body.
private struct SliceJob {
    let body: (Range<Int>) -> Void
    let perPart: Int
    let count: Int
}

/// Owns the C pool's threads for as long as any `Parallel` refers to it.
///
/// `@unchecked Sendable`: the only state is the pool pointer, set once in
/// init and freed in deinit; `loom_pool_run` serializes concurrent callers
/// under its own lock, and the parts it runs touch only the caller's job,
/// which outlives the call because the call returns after every part has.
private final class WorkerPool: @unchecked Sendable {
    let pool: OpaquePointer

    init(threads: Int) {
        guard let pool = loom_pool_create(Int32(threads)) else { fatalError("cannot start \(threads) threads") }
        self.pool = pool
    }

    deinit { loom_pool_destroy(pool) }
}
