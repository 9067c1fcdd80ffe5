import LoomCluster
import LoomEngine

/// Why one attempt at a request ended without finishing it, decided once
/// where the error arose (`AttemptStep.outcome(of:)`), so the retry logic
/// reads a type, not error codes.
enum AttemptError: Error, Equatable {
    /// The worker could not take the request now (its queue is full):
    /// another may.
    case busy(WorkerID, String)
    /// The worker failed the request (its connection broke, its stream was
    /// cut, a KV write into it failed): continue elsewhere without it.
    case failed(WorkerID, String)
    /// The request itself was refused, as every worker would refuse it (a
    /// prompt longer than the context, say): end it with this reason.
    case refused(SchedulerError)

    var worker: WorkerID? {
        switch self {
        case .busy(let worker, _), .failed(let worker, _): worker
        case .refused: nil
        }
    }
}

/// How long to wait before trying again: doubling from `base` up to `cap`,
/// so a cluster whose workers are all busy is not hammered in a loop.
struct Backoff: Sendable, Equatable {
    var base: Duration = .milliseconds(10)
    var cap: Duration = .milliseconds(200)

    /// The wait before retry number `retry` (1 for the first retry).
    func delay(beforeRetry retry: Int) -> Duration {
        guard retry > 0 else { return .zero }
        var delay = base
        for _ in 1..<retry where delay < cap { delay *= 2 }
        return min(delay, cap)
    }
}

/// The router's decisions for one request across its attempts, as a value
/// that is told what happened and answers what to do next. It never reads
/// a clock or touches a socket: `ClusterBackend` performs its actions, and
/// the tests drive it directly through every failure path.
struct RequestAttempts: Sendable {
    enum Action: Equatable {
        /// Route the request (again), avoiding these workers.
        case route(excluding: Set<WorkerID>)
        /// Wait this long, then ask `next` for the retry.
        case wait(Duration)
        /// Every token the request asked for was delivered before a worker
        /// failed: only the finish is left to send.
        case finishAtLength
        /// End the request with this error.
        case fail(SchedulerError)
    }

    let maxAttempts: Int
    let backoff: Backoff
    private(set) var attempts = 0
    private(set) var excluded: Set<WorkerID> = []
    private(set) var lastFailure: AttemptError?

    init(maxAttempts: Int = 3, backoff: Backoff = Backoff()) {
        precondition(maxAttempts > 0, "a request needs at least one attempt")
        self.maxAttempts = maxAttempts
        self.backoff = backoff
    }

    /// What to do now, given how many tokens were delivered of how many
    /// the request asked for.
    mutating func next(delivered: Int, maxTokens: Int) -> Action {
        // A stream that broke after its last token but before its finish.
        if delivered >= maxTokens { return .finishAtLength }
        guard attempts < maxAttempts else { return .fail(exhausted) }
        attempts += 1
        return .route(excluding: excluded)
    }

    /// The router found no worker for the request.
    mutating func noRoute() -> Action {
        .fail(exhausted)
    }

    /// The attempt just routed ended with `error`: a refusal ends the
    /// request, anything else moves it off that worker.
    mutating func failed(_ error: AttemptError, delivered: Int, maxTokens: Int) -> Action {
        lastFailure = error
        if case .refused(let refusal) = error { return .fail(refusal) }
        if let worker = error.worker { excluded.insert(worker) }
        if delivered >= maxTokens { return .finishAtLength }
        guard attempts < maxAttempts else { return .fail(exhausted) }
        return .wait(backoff.delay(beforeRetry: attempts))
    }

    /// The error a request ends with once no attempt is left: the refusal
    /// itself, else busy workers as a 429 (retry with backoff) and failed
    /// ones as a 503.
    var exhausted: SchedulerError {
        switch lastFailure {
        case nil:
            SchedulerError(.unavailable, "no live decode worker can take this request; start one (loom worker --role decode) or retry later")
        case .refused(let error):
            error
        case .busy(let worker, let reason):
            SchedulerError(.overloaded, "the cluster could not serve this request: every worker tried is busy (last: \(worker): \(reason)); retry later")
        case .failed(let worker, let reason):
            SchedulerError(.unavailable, "the cluster could not serve this request: every worker tried failed it (last: \(worker): \(reason)); retry later")
        }
    }
}
