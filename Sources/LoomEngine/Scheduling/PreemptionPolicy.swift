/// What a preemption policy may look at when it must free blocks.
public struct PreemptionCandidate: Sendable, Equatable {
    public var id: RequestID
    /// Admission order: lower arrived earlier.
    public var arrival: UInt64
    public var computedTokens: Int
    public var blockCount: Int
}

/// Chooses which running sequence gives its blocks back when a running
/// sequence cannot grow. The victim is preempted by recompute: its blocks are
/// released (cached ones stay reusable) and it returns to the waiting queue
/// with the tokens it has generated, to be prefilled again later.
public protocol PreemptionPolicy: Sendable {
    /// The index into `candidates` (never empty) to preempt. `candidates`
    /// includes the sequence asking for blocks; choosing it means it yields.
    func victim(among candidates: [PreemptionCandidate]) -> Int
}

/// Preempts the most recent arrival, so the oldest requests (which have
/// waited longest and hold the most computed work) keep making progress and
/// FCFS order is kept across preemptions.
public struct NewestFirstPreemption: PreemptionPolicy {
    public init() {}

    public func victim(among candidates: [PreemptionCandidate]) -> Int {
        precondition(!candidates.isEmpty, "preemption needs a running sequence")
        var best = 0
        for i in candidates.indices where candidates[i].arrival > candidates[best].arrival { best = i }
        return best
    }
}
