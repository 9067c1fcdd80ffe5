/// One RC queue pair as a value type that returns actions: connection
/// (RESET → INIT → RTR → RTS with the peer's QP info), work request
/// accounting against the send-queue depth, retry of posts the queue
/// refused, receives re-posted as immediates consume them, and on any
/// error: fail everything pending and stay in ERROR. The caller performs
/// the actions against a `VerbsDevice`.
///
/// A failed queue pair is never brought up again in place. Its peer's half
/// is usually broken too (an RC responder that NAKs a write for a bad rkey
/// moves its own queue pair to ERROR; a peer that restarted has new ones),
/// and the two halves' PSNs must restart together, so reviving one side
/// against the peer's old numbers would fail again or, worse, be taken
/// for duplicates. The writer sets up a fresh pair instead (`VerbsLink`).
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

    /// `.error` once anything failed, or after a close.
    public private(set) var state: QueuePairState = .reset
    public let sendQueueDepth: Int
    public let receiveDepth: Int
    /// Posted and not yet completed, by work request id.
    public private(set) var inFlight: Set<UInt64> = []
    /// Accepted but not posted: the send queue was full.
    public private(set) var waiting: [VerbsWorkRequest] = []
    /// Why the queue pair went to ERROR, once it did.
    public private(set) var failure: String?
    /// It went to ERROR because the peer refused a key or range: a stale
    /// descriptor, not a broken path.
    public private(set) var refusedByPeer = false

    public init(sendQueueDepth: Int, receiveDepth: Int) {
        precondition(sendQueueDepth > 0 && receiveDepth > 0)
        self.sendQueueDepth = sendQueueDepth
        self.receiveDepth = receiveDepth
    }

    /// The id receives are posted with: what tells a receive's completion
    /// from a write's, as a failed completion carries nothing but its id.
    public var receiveTag: UInt64 { VerbsWorkRequest.receiveFlag }

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
            if state != .error, completion.status == .remoteAccessError { refusedByPeer = true }
            return fail(reason: "work request \(completion.workRequestID) completed with \(completion.status)", failed: [completion.workRequestID])
        }
        var actions: [Action] = [.complete(completion.workRequestID)]
        while inFlight.count < sendQueueDepth, !waiting.isEmpty {
            let next = waiting.removeFirst()
            inFlight.insert(next.id)
            actions.append(.post(next))
        }
        return actions
    }

    /// A successful receive always counts: the write landed, even when its
    /// completion is read after the QP failed. Receives are re-posted, and
    /// their failures (ERROR flushes every posted one) are this QP's
    /// failure, only while it is up.
    private mutating func received(_ completion: VerbsCompletion) -> [Action] {
        let up = state == .readyToSend
        guard completion.status == .success else {
            return up ? fail(reason: "a receive completed with \(completion.status)") : []
        }
        var actions: [Action] = completion.immediate.map { [.immediate($0)] } ?? []
        if up { actions.append(.postReceives(1, tag: receiveTag)) }
        return actions
    }

    /// A fatal post or modify error, an error completion, or a close:
    /// nothing that is pending can be trusted to land, so all of it fails
    /// (never silently replayed) and the QP stays in ERROR for good.
    public mutating func fail(reason: String, failed: [UInt64] = []) -> [Action] {
        let pending = takePending(failed)
        let wasUp = state != .error
        state = .error
        if wasUp { failure = reason }
        return (pending.map { [.fail($0, reason: reason)] } ?? []) + (wasUp ? [.modify(.error)] : [])
    }

    private mutating func takePending(_ failed: [UInt64]) -> [UInt64]? {
        let pending = failed + inFlight.sorted() + waiting.map(\.id)
        inFlight = []
        waiting = []
        return pending.isEmpty ? nil : pending
    }
}
