import Foundation

/// Decides who reads the completion queue: a caller polling it while it
/// waits, or the progress thread.
///
/// Both at once race for every completion: the progress thread is woken
/// from the queue's wait for data the caller reads anyway, and on a 2-core
/// machine that wake-up takes the core the other side of a ping-pong needs.
/// Measured with a C ping-pong over tcp;ofi_rxm: a second thread blocked in
/// fi_cq_sread beside the poller raised the one-way latency from 14.7 to
/// 23.4 µs. So the progress thread stays out of the queue while callers
/// poll, and for a short linger after, since a caller that just finished
/// waiting usually polls again a round trip later. The cost: a completion
/// nobody polls for (an immediate for a target that is not waiting yet, or
/// an incoming write the provider must progress to place and acknowledge)
/// is read up to two lingers late. A caller that parks hands the queue
/// back at once.
///
/// `@unchecked Sendable`: `pollers` and `lastPollEnded` are read and
/// written only with `condition` locked.
final class ProgressHandoff: @unchecked Sendable {
    static let linger: Duration = .microseconds(500)

    private let condition = NSCondition()
    private var pollers = 0
    private var lastPollEnded = ContinuousClock.now - linger

    func callerStartsPolling() {
        condition.lock()
        pollers += 1
        condition.unlock()
    }

    /// A caller that gives up and parks needs the progress thread back now:
    /// the completion it waits for is read by no one else.
    func callerStopsPolling(parking: Bool) {
        condition.lock()
        pollers -= 1
        lastPollEnded = parking ? ContinuousClock.now - Self.linger : .now
        let resume = pollers == 0 && parking
        condition.unlock()
        if resume { condition.broadcast() }
    }

    /// Blocks the progress thread while callers poll (at most `bound`, so
    /// it still notices deadlines and close).
    func progressThreadWaits(atMost bound: Duration) {
        let clock = ContinuousClock()
        let end = clock.now + bound
        condition.lock()
        defer { condition.unlock() }
        while clock.now < end {
            let quietFrom = lastPollEnded + Self.linger
            if pollers == 0 && clock.now >= quietFrom { return }
            // A caller that finishes its poll does not wake this thread (that
            // would cost a wake-up per poll); it looks again a linger later.
            let until = min(end, pollers > 0 ? clock.now + Self.linger : quietFrom)
            _ = condition.wait(until: Date(timeIntervalSinceNow: seconds(clock.now.duration(to: until))))
        }
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
