/// Counts of a run in flight, for the progress line.
public struct RunProgress: Equatable, Sendable {
    public var total: Int
    public var ok = 0
    public var failed = 0
    public var elapsed = 0.0

    public init(total: Int) { self.total = total }

    public var done: Int { ok + failed }

    /// `[########------------]  12/64  ok 12  failed 0  elapsed 3.2 s`
    public func line(barWidth: Int = 24) -> String {
        let filled = total == 0 ? barWidth : barWidth * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled)
        let width = String(total).count
        let doneText = String(repeating: " ", count: max(width - String(done).count, 0)) + String(done)
        let seconds = (elapsed * 10).rounded() / 10
        return "[\(bar)] \(doneText)/\(total)  ok \(ok)  failed \(failed)  elapsed \(seconds) s"
    }
}

/// The counter a run's requests update and its progress ticker reads; an
/// actor because both run concurrently.
actor ProgressCounter {
    private var progress: RunProgress
    private let start: ContinuousClock.Instant

    init(total: Int, start: ContinuousClock.Instant) {
        progress = RunProgress(total: total)
        self.start = start
    }

    func record(_ outcome: RequestOutcome) {
        if outcome.metrics != nil { progress.ok += 1 } else { progress.failed += 1 }
    }

    func snapshot() -> RunProgress {
        var copy = progress
        copy.elapsed = (ContinuousClock.now - start).seconds
        return copy
    }
}
