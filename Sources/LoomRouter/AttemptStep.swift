import LoomCluster
import LoomEngine
import LoomProtocol
import LoomWire

/// The steps of one attempt, and who is to blame when each fails: the one
/// place a worker's error becomes a decision about the request.
enum AttemptStep {
    /// The decode worker reserving blocks for a prompt another prefills.
    case reserve(decode: WorkerID)
    /// The prefill worker computing the prompt into those blocks.
    case prefill(prefill: WorkerID, decode: WorkerID)
    /// A worker streaming the request's tokens.
    case relay(WorkerID)

    enum Outcome: Equatable {
        /// Leave the prompt to the decode worker: the disaggregated path is
        /// busy now, and prefilling locally is still correct.
        case prefillLocally
        case attempt(AttemptError)
    }

    /// What `error`, thrown by this step, does to the request.
    func outcome(of error: Error) -> Outcome {
        guard let wire = error as? WireError else { return .attempt(.failed(blamed(for: nil), "\(error)")) }
        let failure = RemoteFailure(wire)
        switch (self, failure) {
        case (.reserve, .refused(let refusal)) where refusal.isPassing:
            return .prefillLocally
        case (.prefill, .refused):
            // The decode worker accepted the request; a prefill worker
            // that refuses it (busy, or smaller than the decode worker)
            // leaves it to the decode worker, which prefills it itself.
            return .prefillLocally
        case (.relay(let worker), .refused(let refusal)) where refusal.isPassing:
            return .attempt(.busy(worker, refusal.message))
        case (_, .refused(let refusal)):
            return .attempt(.refused(refusal))
        default:
            return .attempt(.failed(blamed(for: failure), wire.message))
        }
    }

    /// The worker that failed. A prefill worker that could not write into
    /// the decode worker is fine: the decode worker is the failure.
    private func blamed(for failure: RemoteFailure?) -> WorkerID {
        switch self {
        case .reserve(let decode): decode
        case .relay(let worker): worker
        case .prefill(let prefill, let decode):
            if case .transfer = failure { decode } else { prefill }
        }
    }
}

extension SchedulerError {
    /// A refusal about the worker, not the request: it is full, or
    /// shutting down. Another worker may well take the request.
    var isPassing: Bool { code == .overloaded || code == .unavailable }
}
