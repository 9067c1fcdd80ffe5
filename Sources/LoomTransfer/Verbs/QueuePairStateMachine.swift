/// One RC queue pair as a value type that returns actions: connection
/// (RESET → INIT → RTR → RTS with the peer's QP info), work request
/// accounting against the send-queue depth, retry of posts the queue
/// refused, receives re-posted as immediates consume them, and on any
/// error: fail everything pending, then reconnect. The caller performs the
/// actions against a `VerbsDevice`.
public struct QueuePairStateMachine: Sendable {
    public enum Action: Sendable, Hashable {
        case modify(QueuePairState)
        case postReceives(Int, tag: UInt64)
        case post(VerbsWorkRequest)
        case complete(UInt64)
        case fail([UInt64], reason: String)
        /// A peer's write with this immediate landed.
        case immediate(UInt32)
    }

    /// Failures with no successful completion in between before the QP is
    /// given up (left in ERROR) instead of reconnected once more.
    public static let reconnectLimit = 3

    /// `.error` once given up, or after `shutDown`.
    public private(set) var state: QueuePairState = .reset
    public let sendQueueDepth: Int
    public let receiveDepth: Int
    /// Posted and not yet completed, by work request id.
    public private(set) var inFlight: Set<UInt64> = []
    /// Accepted but not posted: the send queue was full.
    public private(set) var waiting: [VerbsWorkRequest] = []
    public private(set) var reconnects = 0
    private var failuresInARow = 0

    public init(sendQueueDepth: Int, receiveDepth: Int) {
        precondition(sendQueueDepth > 0 && receiveDepth > 0)
        self.sendQueueDepth = sendQueueDepth
        self.receiveDepth = receiveDepth
    }

    /// The id this incarnation's receives are posted with. A reset drops
    /// every posted receive, so completions of older ones (flushed, from
    /// before the reset) must not be taken for this incarnation's.
    public var receiveTag: UInt64 { VerbsWorkRequest.receiveFlag | UInt64(reconnects) }

    /// Bring the QP up towards the peer; pre-post receives for immediates
    /// before RTR, since a peer may write as soon as we are ready to receive.
    public mutating func connect() -> [Action] {
        guard state == .reset else { return [] }
        state = .readyToSend
        return [.modify(.initialized), .postReceives(receiveDepth, tag: receiveTag), .modify(.readyToReceive), .modify(.readyToSend)]
    }

    public mutating func submit(_ request: VerbsWorkRequest) -> [Action] {
        guard state == .readyToSend else {
            return [.fail([request.id], reason: "queue pair is \(state), not ready to send")]
        }
        guard inFlight.count < sendQueueDepth, waiting.isEmpty else {
            waiting.append(request)
            return []
        }
        inFlight.insert(request.id)
        return [.post(request)]
    }

    /// The device refused these posts, in this order, with "queue full":
    /// keep them, ahead of the rest, for the next completion to retry. With
    /// nothing in flight no completion will come, so the refusal is an error.
    public mutating func postsRefused(_ requests: [VerbsWorkRequest]) -> [Action] {
        guard !requests.isEmpty else { return [] }
        for request in requests { inFlight.remove(request.id) }
        waiting.insert(contentsOf: requests, at: 0)
        guard inFlight.isEmpty else { return [] }
        return fail(reason: "the device refused a write with an empty send queue")
    }

    public mutating func completed(_ completion: VerbsCompletion) -> [Action] {
        if completion.isReceive { return received(completion) }
        // Unknown ids belong to writes already failed by a reset.
        guard inFlight.remove(completion.workRequestID) != nil else { return [] }
        guard completion.status == .success else {
            return fail(reason: "work request \(completion.workRequestID) completed with \(completion.status)", failed: [completion.workRequestID])
        }
        failuresInARow = 0
        var actions: [Action] = [.complete(completion.workRequestID)]
        while inFlight.count < sendQueueDepth, !waiting.isEmpty {
            let next = waiting.removeFirst()
            inFlight.insert(next.id)
            actions.append(.post(next))
        }
        return actions
    }

    /// A successful receive always counts: the write landed, even when its
    /// completion is read after a reset. Only this incarnation's receives
    /// are re-posted, and only their failures are this QP's failure.
    private mutating func received(_ completion: VerbsCompletion) -> [Action] {
        let current = completion.workRequestID == receiveTag && state == .readyToSend
        guard completion.status == .success else {
            return current ? fail(reason: "a receive completed with \(completion.status)") : []
        }
        var actions: [Action] = completion.immediate.map { [.immediate($0)] } ?? []
        if current {
            failuresInARow = 0
            actions.append(.postReceives(1, tag: receiveTag))
        }
        return actions
    }

    /// A fatal post or modify error, or an error completion: nothing that
    /// is pending can be trusted to land, so all of it fails (never silently
    /// replayed) and the QP goes through RESET to be connected again,
    /// unless it failed `reconnectLimit` times in a row.
    public mutating func fail(reason: String, failed: [UInt64] = []) -> [Action] {
        // Already given up: what fails here was never posted.
        guard state != .error else { return takePending(failed).map { [.fail($0, reason: reason)] } ?? [] }
        failuresInARow += 1
        guard failuresInARow <= Self.reconnectLimit else {
            return shutDown(reason: "\(reason); gave up after \(Self.reconnectLimit) reconnects in a row", failed: failed)
        }
        let pending = takePending(failed)
        state = .reset
        reconnects += 1
        return (pending.map { [.fail($0, reason: reason)] } ?? []) + [.modify(.error), .modify(.reset)] + connect()
    }

    /// Fails everything pending and leaves the QP in ERROR for good.
    public mutating func shutDown(reason: String, failed: [UInt64] = []) -> [Action] {
        let pending = takePending(failed)
        let wasUp = state != .error
        state = .error
        return (pending.map { [.fail($0, reason: reason)] } ?? []) + (wasUp ? [.modify(.error)] : [])
    }

    private mutating func takePending(_ failed: [UInt64]) -> [UInt64]? {
        let pending = failed + inFlight.sorted() + waiting.map(\.id)
        inFlight = []
        waiting = []
        return pending.isEmpty ? nil : pending
    }
}
