import LoomWire

/// Runs a `QueuePairStateMachine` against a device and reports what
/// finished. A value: its owner keeps it behind one lock, so the machine
/// and the device calls it makes stay in step.
public struct VerbsQueuePair: Sendable {
    public enum Event: Sendable {
        case finished(UInt64, Result<Void, TransferError>)
        /// A peer's write carrying this immediate landed.
        case immediate(UInt32)
    }

    public private(set) var machine: QueuePairStateMachine
    let device: any VerbsDevice
    public let qp: UInt32
    let remote: Loom_Transfer_VerbsBackendOffer

    public init(device: any VerbsDevice, qp: UInt32, remote: Loom_Transfer_VerbsBackendOffer, sendQueueDepth: Int, receiveDepth: Int) {
        self.device = device
        self.qp = qp
        self.remote = remote
        self.machine = QueuePairStateMachine(sendQueueDepth: sendQueueDepth, receiveDepth: receiveDepth)
    }

    public mutating func connect() -> [Event] { perform(machine.connect()) }
    public mutating func submit(_ request: VerbsWorkRequest) -> [Event] { perform(machine.submit(request)) }
    public mutating func completed(_ completion: VerbsCompletion) -> [Event] { perform(machine.completed(completion)) }
    public mutating func fail(reason: String) -> [Event] { perform(machine.fail(reason: reason)) }

    private mutating func perform(_ actions: [QueuePairStateMachine.Action]) -> [Event] {
        var events: [Event] = []
        // Once the queue refused a post, the batch's later posts wait too:
        // trying them could overtake the refused one.
        var refused: [VerbsWorkRequest] = []
        for action in actions {
            if case .post(let request) = action, !refused.isEmpty {
                refused.append(request)
                continue
            }
            do throws(VerbsFailure) {
                try execute(action, into: &events)
            } catch {
                if case .post(let request) = action, error.kind == .sendQueueFull {
                    refused.append(request)
                    continue
                }
                // The rest of this batch belonged to the broken QP; what of
                // it was pending, the failure fails.
                return events + perform(machine.fail(reason: "\(error)"))
            }
        }
        guard !refused.isEmpty else { return events }
        return events + perform(machine.postsRefused(refused))
    }

    private func execute(_ action: QueuePairStateMachine.Action, into events: inout [Event]) throws(VerbsFailure) {
        switch action {
        case .modify(let state):
            try device.modify(qp, to: state, remote: state == .readyToReceive ? remote : nil)
        case .postReceives(let count, let tag):
            try device.postReceives(qp, count: count, tag: tag)
        case .post(let request):
            try device.postWrite(qp, request)
        case .complete(let id):
            events.append(.finished(id, .success(())))
        case .fail(let ids, let reason):
            for id in ids { events.append(.finished(id, .failure(TransferError(.ackLost, "RDMA write \(id) failed: \(reason); not replayed")))) }
        case .immediate(let value):
            events.append(.immediate(value))
        }
    }
}
