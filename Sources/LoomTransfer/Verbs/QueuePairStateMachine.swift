/// One RC queue pair as a value type that returns actions: connection
/// (RESET → INIT → RTR → RTS with the peer's QP info from HELLO), work
/// request accounting against the send-queue depth, retry of posts the
/// queue refused, and on any error: fail everything pending, then reconnect.
/// The caller performs the actions against a `VerbsDevice`.
public struct QueuePairStateMachine: Sendable {
    public enum Action: Sendable, Hashable {
        case modify(QueuePairState)
        case postReceives(Int)
        case post(VerbsWorkRequest)
        case complete(UInt64)
        case fail([UInt64], reason: String)
    }

    public private(set) var state: QueuePairState = .reset
    public let sendQueueDepth: Int
    public let receiveDepth: Int
    /// Posted and not yet completed, by work request id.
    public private(set) var inFlight: Set<UInt64> = []
    /// Accepted but not posted: the send queue was full.
    public private(set) var waiting: [VerbsWorkRequest] = []
    public private(set) var reconnects = 0

    public init(sendQueueDepth: Int, receiveDepth: Int) {
        precondition(sendQueueDepth > 0 && receiveDepth > 0)
        self.sendQueueDepth = sendQueueDepth
        self.receiveDepth = receiveDepth
    }

    /// Bring the QP up towards the peer; pre-post receives for immediates.
    public mutating func connect() -> [Action] {
        guard state == .reset else { return [] }
        state = .readyToSend
        return [.modify(.initialized), .postReceives(receiveDepth), .modify(.readyToReceive), .modify(.readyToSend)]
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

    /// The device refused a post with "queue full": keep it, in order, for
    /// the next completion to retry.
    public mutating func postRefused(_ request: VerbsWorkRequest) {
        inFlight.remove(request.id)
        waiting.insert(request, at: 0)
    }

    public mutating func completed(_ completion: VerbsCompletion) -> [Action] {
        guard inFlight.remove(completion.workRequestID) != nil else { return [] }
        guard completion.status == .success else {
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

    /// A fatal post or modify error, or an error completion: nothing that
    /// is pending can be trusted to land, so all of it fails (never silently
    /// replayed) and the QP goes through RESET to be connected again.
    public mutating func fail(reason: String, failed: [UInt64] = []) -> [Action] {
        let pending = failed + inFlight.sorted() + waiting.map(\.id)
        inFlight = []
        waiting = []
        state = .reset
        reconnects += 1
        return [.fail(pending, reason: reason), .modify(.error), .modify(.reset)] + connect()
    }
}
