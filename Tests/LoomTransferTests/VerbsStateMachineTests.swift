import LoomWire
import Testing
@testable import LoomTransfer

/// Records what the backend asked of the device and fails on cue.
final class FakeVerbsDevice: VerbsDevice {
    var calls: [String] = []
    var states: [QueuePairState] = []
    var posted: [UInt64] = []
    var queueFullOnce: Set<UInt64> = []
    var failModifyTo: QueuePairState?

    func modify(_ qp: UInt32, to state: QueuePairState, remote: Loom_Wire_VerbsBackendOffer?) throws(VerbsFailure) {
        if state == failModifyTo {
            failModifyTo = nil
            throw VerbsFailure(.fatal("modify to \(state) failed"))
        }
        if state == .readyToReceive, remote?.qpNum == nil { throw VerbsFailure(.fatal("RTR needs the remote QP")) }
        calls.append("modify \(state) remoteQP=\(remote.map { "\($0.qpNum)" } ?? "-")")
        states.append(state)
    }

    func postWrite(_ qp: UInt32, _ request: VerbsWorkRequest) throws(VerbsFailure) {
        if queueFullOnce.remove(request.id) != nil { throw VerbsFailure(.sendQueueFull) }
        posted.append(request.id)
    }

    func postReceives(_ qp: UInt32, count: Int) throws(VerbsFailure) {
        calls.append("recv \(count)")
    }
}

@Suite("Transfer verbs queue-pair state machine (fake device)")
struct VerbsStateMachineTests {
    func request(_ id: UInt64) -> VerbsWorkRequest {
        VerbsWorkRequest(id: id, remoteAddress: 0x1000 + id * 64, remoteKey: 7, length: 64, immediate: UInt32(id))
    }

    func queuePair(_ device: FakeVerbsDevice, depth: Int = 2) -> VerbsQueuePair {
        var remote = Loom_Wire_VerbsBackendOffer()
        remote.qpNum = 99
        let qp = VerbsQueuePair(device: device, qp: 1, remote: remote, sendQueueDepth: depth, receiveDepth: 16)
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

    @Test("an error completion fails every pending write and reconnects")
    func errorCompletion() throws {
        let device = FakeVerbsDevice()
        let qp = queuePair(device, depth: 2)
        for id in 1...3 { qp.submit(request(UInt64(id))) }
        qp.completed(VerbsCompletion(workRequestID: 1, status: .retryExceeded))
        for id: UInt64 in [1, 2, 3] {
            guard case .failure(let error) = qp.outcomes[id] else { Issue.record("write \(id) not failed"); continue }
            #expect(error.code == .ackLost)
        }
        #expect(qp.machine.reconnects == 1)
        #expect(qp.machine.state == .readyToSend)
        #expect(Array(device.states.suffix(5)) == [.error, .reset, .initialized, .readyToReceive, .readyToSend])
        // A late completion for a failed request changes nothing.
        qp.completed(VerbsCompletion(workRequestID: 2, status: .success))
        guard case .failure = qp.outcomes[2] else { Issue.record("late completion resurrected a failed write"); return }
        qp.submit(request(4))
        #expect(device.posted.last == 4)
    }

    @Test("a failed transition fails the QP instead of leaving it half up")
    func failedModify() {
        let device = FakeVerbsDevice()
        device.failModifyTo = .readyToReceive
        let qp = queuePair(device)
        #expect(qp.machine.reconnects == 1)
        #expect(qp.machine.state == .readyToSend)
        #expect(device.states.last == .readyToSend)
    }

    @Test("writes submitted before the QP is up fail at once")
    func notConnected() {
        var machine = QueuePairStateMachine(sendQueueDepth: 1, receiveDepth: 1)
        #expect(machine.submit(request(1)) == [.fail([1], reason: "queue pair is reset, not ready to send")])
    }
}
