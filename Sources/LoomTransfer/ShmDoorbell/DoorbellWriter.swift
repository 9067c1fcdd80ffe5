import LoomWire
import NIOConcurrencyHelpers

/// The writer's end of a doorbell. A write publishes its commit records
/// straight from the calling task when the ring has room, then waits for
/// its acknowledgement. A thread of its own drains acknowledgements and
/// resumes the waiting writes by ticket, in whatever order they come;
/// publishes records that did not fit; and fails writes whose
/// acknowledgement is overdue or whose target went away. Nothing waits
/// longer than `ackTimeout`.
final class DoorbellWriter: Sendable {
    /// How long the thread sleeps unrung with no write waiting: a safety
    /// net, since the target rings for every acknowledgement. A write
    /// arriving meanwhile rings it only when its acknowledgement is due
    /// before the thread would wake (a wake-up per write would cost more).
    static let idleWait = Duration.milliseconds(500)

    let mapping: DoorbellMapping
    let ackTimeout: Duration
    private let state: NIOLockedValueBox<DoorbellWriterState>
    private let thread: JoinableThread

    init(mapping: DoorbellMapping, ackTimeout: Duration, idleWait: Duration = DoorbellWriter.idleWait) {
        let state = NIOLockedValueBox(DoorbellWriterState())
        self.mapping = mapping
        self.ackTimeout = ackTimeout
        self.state = state
        let timing = Timing(ackTimeout: ackTimeout, idleWait: idleWait)
        thread = JoinableThread(name: "loom-shm-writer") {
            Self.run(mapping: mapping, state: state, timing: timing)
        }
    }

    private struct Timing {
        let ackTimeout: Duration
        let idleWait: Duration
    }

    /// Returns once the target acknowledged the write; throws its refusal,
    /// `ackLost` or `peerUnavailable`. The bytes must already be in place.
    /// Cancelling the caller does not cut the wait short (the write may be
    /// in the ring already); `ackTimeout` bounds it.
    func commit(opID: UInt64, immediate: UInt32?, segments: [Loom_Transfer_WriteSegment]) async throws {
        let deadline = ContinuousClock.now + ackTimeout
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let (published, wakeWriter, settled) = state.withLockedValue {
                $0.submit(opID: opID, immediate: immediate, segments: segments,
                          continuation: continuation, deadline: deadline, commits: mapping.commits)
            }
            if published { mapping.targetBell.ring() }
            if wakeWriter { mapping.writerBell.ring() }
            Self.resume(settled)
        }
    }

    /// When the thread next looks by itself, once a pass found nothing to
    /// do (for tests).
    var threadWakesAt: ContinuousClock.Instant? { state.withLockedValue { $0.wakeAt } }

    /// The target went away (its RPC stream ended): fails every waiting
    /// write now and stops the thread.
    func peerGone(_ reason: String) {
        Self.resume(state.withLockedValue { $0.close(because: reason) })
        mapping.writerBell.ring()
    }

    /// Stops the thread and waits for it; writes still waiting fail.
    func close() async {
        Self.resume(state.withLockedValue { $0.close(because: "the shm transport was closed") })
        mapping.writerBell.ring()
        await thread.join()
    }

    private static func resume(_ settled: DoorbellWriterState.Settled) {
        for (continuation, error) in settled {
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    private static func run(mapping: DoorbellMapping, state: NIOLockedValueBox<DoorbellWriterState>, timing: Timing) {
        // Tells the target this writer is gone, so its thread stops too.
        defer {
            mapping.raise(.writerClosed)
            mapping.targetBell.ring()
        }
        let bell = mapping.writerBell
        while true {
            let seen = bell.value()
            let step = state.withLockedValue { Self.step(&$0, mapping: mapping, timing: timing) }
            if step.ringTarget { mapping.targetBell.ring() }
            resume(step.settled)
            if step.finished { return }
            guard let sleep = step.sleep else { continue }
            bell.sleep(seen: seen, timeout: sleep) { state.withLockedValue { $0.hasWork(mapping) } }
        }
    }

    private struct Step {
        var settled: DoorbellWriterState.Settled = []
        var ringTarget = false
        var finished = false
        /// How long to sleep unless rung; nil to look again at once.
        var sleep: Duration?
    }

    /// One pass of the thread under the lock. The target's closed flag is
    /// read before its last acknowledgements are drained, so none it posted
    /// before closing is mistaken for lost.
    private static func step(_ state: inout DoorbellWriterState, mapping: DoorbellMapping, timing: Timing) -> Step {
        var step = Step()
        guard state.closed == nil else {
            step.finished = true
            return step
        }
        let targetClosed = mapping.isRaised(.targetClosed)
        var progressed = false
        do {
            let drained = try state.drain(mapping.acks)
            step.settled = drained.settled
            let published = try state.publish(mapping.commits)
            progressed = drained.consumed || published
            step.ringTarget = drained.targetMayWait || published
        } catch {
            step.settled += state.close(because: error.message)
        }
        let now = ContinuousClock.now
        step.settled += state.expire(now: now, ackTimeout: timing.ackTimeout)
        if targetClosed { step.settled += state.close(because: "the target stopped serving this doorbell") }
        step.finished = state.closed != nil
        if progressed || step.finished {
            state.wakeAt = nil
        } else {
            // Recorded under the lock writes take, so that one due sooner rings.
            let sleep = min(state.nextDeadline.map { $0 - now } ?? timing.idleWait, timing.idleWait)
            state.wakeAt = now + sleep
            step.sleep = sleep
        }
        return step
    }
}
