import LoomWire
import Testing
@testable import LoomTransfer

/// A queue pair whose events the test reads back by id.
final class RecordedQueuePair {
    var pair: VerbsQueuePair
    var outcomes: [UInt64: Result<Void, TransferError>] = [:]
    var immediates: [UInt32] = []

    init(_ pair: VerbsQueuePair) { self.pair = pair }

    var machine: QueuePairStateMachine { pair.machine }
    func connect() { record(pair.connect()) }
    func submit(_ request: VerbsWorkRequest) { record(pair.submit(request)) }
    func completed(_ completion: VerbsCompletion) { record(pair.completed(completion)) }

    private func record(_ events: [VerbsQueuePair.Event]) {
        for event in events {
            switch event {
            case .finished(let id, let result): outcomes[id] = result
            case .immediate(let value): immediates.append(value)
            }
        }
    }
}

@Suite("Transfer verbs queue-pair state machine (fake device)")
struct VerbsStateMachineTests {
    func request(_ id: UInt64) -> VerbsWorkRequest {
        VerbsWorkRequest(id: id, remoteAddress: 0x1000 + id * 64, remoteKey: 7, length: 64, immediate: UInt32(id))
    }

    func queuePair(_ device: FakeVerbsDevice, depth: Int = 2) -> RecordedQueuePair {
        var remote = Loom_Transfer_VerbsBackendOffer()
        remote.qpNum = 99
        let qp = RecordedQueuePair(VerbsQueuePair(device: device, qp: 1, remote: remote, sendQueueDepth: depth, receiveDepth: 16))
        qp.connect()
        return qp
    }

    @Test("connecting walks INIT, pre-posts receives, RTR with the peer's QP, then RTS")
    func connect() {
        let device = FakeVerbsDevice()
        _ = queuePair(device)
        #expect(device.calls == ["modify initialized remoteQP=-", "recv 16", "modify readyToReceive remoteQP=99", "modify readyToSend remoteQP=-"])
    }

    @Test("posts stop at the send-queue depth and resume as completions arrive")
    func accounting() {
        let device = FakeVerbsDevice()
        let qp = queuePair(device, depth: 2)
        for id in 1...5 { qp.submit(request(UInt64(id))) }
        #expect(device.posted == [1, 2])
        #expect(qp.machine.waiting.map(\.id) == [3, 4, 5])
        qp.completed(VerbsCompletion(workRequestID: 2, status: .success))
        #expect(device.posted == [1, 2, 3])
        qp.completed(VerbsCompletion(workRequestID: 1, status: .success))
        qp.completed(VerbsCompletion(workRequestID: 3, status: .success))
        #expect(device.posted == [1, 2, 3, 4, 5])
        #expect(qp.outcomes[1] != nil && qp.outcomes[3] != nil)
        #expect(qp.machine.inFlight == [4, 5])
    }

    @Test("a post refused because the send queue is full is retried in order")
    func queueFullRetry() {
        let device = FakeVerbsDevice()
        device.queueFullOnce = [2]
        let qp = queuePair(device, depth: 4)
        for id in 1...3 { qp.submit(request(UInt64(id))) }
        #expect(device.posted == [1])
        #expect(qp.machine.waiting.map(\.id) == [2, 3])
        qp.completed(VerbsCompletion(workRequestID: 1, status: .success))
        #expect(device.posted == [1, 2, 3])
    }

    @Test("posts after a refused one in the same batch wait behind it, in order")
    func refusedBatchKeepsOrder() {
        let device = FakeVerbsDevice()
        let qp = queuePair(device, depth: 3)
        for id in 1...2 { qp.submit(request(UInt64(id))) }
        device.queueFullOnce = [3]
        for id in 3...5 { qp.submit(request(UInt64(id))) }
        #expect(qp.machine.waiting.map(\.id) == [3, 4, 5])
        // The completion of 1 frees two slots: 3 is refused again, and 4
        // must not be tried (it would overtake 3).
        device.queueFullOnce = [3]
        qp.completed(VerbsCompletion(workRequestID: 1, status: .success))
        #expect(device.posted == [1, 2])
        #expect(qp.machine.waiting.map(\.id) == [3, 4, 5])
        qp.completed(VerbsCompletion(workRequestID: 2, status: .success))
        #expect(device.posted == [1, 2, 3, 4, 5])
    }

    @Test("a refusal with nothing in flight is an error, not a wait for a completion that never comes")
    func refusedWhenIdle() {
        let device = FakeVerbsDevice()
        device.refuseNextPosts = 1
        let qp = queuePair(device)
        qp.submit(request(1))
        guard case .failure(let error) = qp.outcomes[1] else { Issue.record("write 1 was left waiting"); return }
        #expect(error.code == .ackLost)
        #expect(qp.machine.state == .error)
    }

    @Test("an error completion fails every pending write and leaves the QP in ERROR, refusing writes")
    func errorCompletion() throws {
        let device = FakeVerbsDevice()
        let qp = queuePair(device, depth: 2)
        for id in 1...3 { qp.submit(request(UInt64(id))) }
        qp.completed(VerbsCompletion(workRequestID: 1, status: .retryExceeded))
        for id: UInt64 in [1, 2, 3] {
            guard case .failure(let error) = qp.outcomes[id] else { Issue.record("write \(id) not failed"); continue }
            #expect(error.code == .ackLost)
        }
        #expect(qp.machine.state == .error)
        #expect(device.states.last == .error, "a failed QP must not be brought up again against the peer's old numbers")
        #expect(qp.machine.failure == "work request 1 completed with retryExceeded")
        // A late completion for a failed request changes nothing.
        qp.completed(VerbsCompletion(workRequestID: 2, status: .success))
        guard case .failure = qp.outcomes[2] else { Issue.record("late completion resurrected a failed write"); return }
        qp.submit(request(4))
        guard case .failure(let refused) = qp.outcomes[4] else { Issue.record("a failed QP accepted a write"); return }
        #expect(refused.message.contains("not ready to send"))
        #expect(device.posted == [1, 2])
    }

    @Test("a failed transition fails the QP instead of leaving it half up")
    func failedModify() {
        let device = FakeVerbsDevice()
        device.failModifyTo = .readyToReceive
        let qp = queuePair(device)
        #expect(qp.machine.state == .error)
        #expect(device.states.last == .error)
        #expect(qp.machine.failure == "modify to readyToReceive failed")
    }

    @Test("each received immediate is reported once and its receive re-posted")
    func immediates() {
        let device = FakeVerbsDevice()
        let qp = queuePair(device)
        let tag = qp.machine.receiveTag
        qp.completed(VerbsCompletion(workRequestID: tag, status: .success, immediate: 5))
        qp.completed(VerbsCompletion(workRequestID: tag, status: .success, immediate: 6))
        #expect(qp.immediates == [5, 6])
        #expect(device.calls.suffix(2) == ["recv 1", "recv 1"])
    }

    @Test("receives after a failure: flushed ones are ignored, landed ones still count, none is re-posted")
    func receivesAfterFailure() {
        let device = FakeVerbsDevice()
        let qp = queuePair(device)
        qp.submit(request(1))
        qp.completed(VerbsCompletion(workRequestID: 1, status: .retryExceeded))
        let calls = device.calls.count
        qp.completed(VerbsCompletion(workRequestID: qp.machine.receiveTag, status: .flushed))
        qp.completed(VerbsCompletion(workRequestID: qp.machine.receiveTag, status: .success, immediate: 9))
        #expect(qp.machine.failure == "work request 1 completed with retryExceeded", "a flush after the failure is not a new one")
        #expect(qp.immediates == [9])
        #expect(device.calls.count == calls, "a receive on a failed QP must not be re-posted")
    }

    @Test("a failed receive of this incarnation fails the QP")
    func failedReceive() {
        let device = FakeVerbsDevice()
        let qp = queuePair(device)
        qp.submit(request(1))
        qp.completed(VerbsCompletion(workRequestID: qp.machine.receiveTag, status: .flushed))
        guard case .failure = qp.outcomes[1] else { Issue.record("write 1 survived its QP's error"); return }
        #expect(qp.machine.state == .error)
    }

    @Test("writes submitted before the QP is up fail at once")
    func notConnected() {
        var machine = QueuePairStateMachine(sendQueueDepth: 1, receiveDepth: 1)
        #expect(machine.submit(request(1)) == [.fail([1], reason: "queue pair is reset, not ready to send")])
    }
}
