import LoomWire

/// Runs a `QueuePairStateMachine` against a device. Single-threaded: the
/// owner calls it from the one task that also polls the completion queue.
public final class VerbsQueuePair {
    public private(set) var machine: QueuePairStateMachine
    let device: VerbsDevice
    let qp: UInt32
    let remote: Loom_Wire_VerbsBackendOffer
    /// Outcome of every work request, by id: nil while pending.
    public private(set) var outcomes: [UInt64: Result<Void, TransferError>] = [:]

    public init(device: VerbsDevice, qp: UInt32, remote: Loom_Wire_VerbsBackendOffer, sendQueueDepth: Int, receiveDepth: Int) {
        self.device = device
        self.qp = qp
        self.remote = remote
        self.machine = QueuePairStateMachine(sendQueueDepth: sendQueueDepth, receiveDepth: receiveDepth)
    }

    public func connect() { perform(machine.connect()) }
    public func submit(_ request: VerbsWorkRequest) { perform(machine.submit(request)) }
    public func completed(_ completion: VerbsCompletion) { perform(machine.completed(completion)) }

    private func perform(_ actions: [QueuePairStateMachine.Action]) {
        for action in actions {
            do throws(VerbsFailure) {
                try execute(action)
            } catch {
                if case .post(let request) = action, error.kind == .sendQueueFull {
                    machine.postRefused(request)
                    continue
                }
                // The rest of this batch belonged to the broken QP.
                perform(machine.fail(reason: "\(error.kind)"))
                return
            }
        }
    }

    private func execute(_ action: QueuePairStateMachine.Action) throws(VerbsFailure) {
        switch action {
        case .modify(let state):
            try device.modify(qp, to: state, remote: state == .readyToReceive ? remote : nil)
        case .postReceives(let count):
            try device.postReceives(qp, count: count)
        case .post(let request):
            try device.postWrite(qp, request)
        case .complete(let id):
            outcomes[id] = .success(())
        case .fail(let ids, let reason):
            for id in ids { outcomes[id] = .failure(TransferError(.ackLost, "RDMA write \(id) failed: \(reason); not replayed")) }
        }
    }
}
