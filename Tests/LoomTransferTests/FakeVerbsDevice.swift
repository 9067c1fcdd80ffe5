import Foundation
import LoomWire
import Synchronization
@testable import LoomTransfer

/// Fake devices that reach each other: a write posted on one lands in the
/// memory another registered and consumes one of its receives, the way an
/// RDMA WRITE WITH IMM does, with no CPU of the target's involved.
final class FakeVerbsNetwork: Sendable {
    private struct Entry { weak var device: FakeVerbsDevice? }
    private let devices = Mutex<[String: Entry]>([:])

    func device() -> FakeVerbsDevice {
        let device = FakeVerbsDevice(name: "fake\(UInt32.random(in: 0...UInt32.max))", network: self)
        devices.withLock { $0[device.name] = Entry(device: device) }
        return device
    }

    /// What the writer's completion says: the peer device must be open,
    /// its queue pair up, the rkey and range registered for remote writes.
    func deliver(_ request: VerbsWorkRequest, to remote: Loom_Transfer_VerbsBackendOffer) -> VerbsCompletion.Status {
        guard let peer = devices.withLock({ $0[remote.device]?.device }) else { return .retryExceeded }
        return peer.land(request, on: remote.qpNum)
    }
}

/// A `VerbsDevice` that records what the backend asked of it, fails on
/// cue, and completes what the test says (or, on a network, what landed).
final class FakeVerbsDevice: VerbsDevice {
    struct QueuePair {
        var state: QueuePairState = .reset
        var remote: Loom_Transfer_VerbsBackendOffer?
        var receiveTag: UInt64 = 0
        var receives = 0
    }

    struct Script {
        var calls: [String] = []
        var states: [QueuePairState] = []
        var posted: [(qp: UInt32, request: VerbsWorkRequest)] = []
        var queueFullOnce: Set<UInt64> = []
        var refuseNextPosts = 0
        var failModifyTo: QueuePairState?
        var completions: [VerbsCompletion] = []
        var events: [VerbsEvent] = []
        var queuePairs: [UInt32: QueuePair] = [:]
        /// By rkey: base address, length, remote-writable.
        var registrations: [UInt32: (address: UInt, count: Int, remoteWrite: Bool)] = [:]
        var nextNumber: UInt32 = 1
        var closed = false
        /// Incoming writes are lost on the way, as to a peer whose link
        /// died: the writer's RC retries run out.
        var unreachable = false
    }

    let name: String
    let network: FakeVerbsNetwork?
    let completionQueueDepth: Int
    private let script = Mutex(Script())

    init(name: String = "fake", network: FakeVerbsNetwork? = nil, completionQueueDepth: Int = 1 << 20) {
        self.name = name
        self.network = network
        self.completionQueueDepth = completionQueueDepth
    }

    var port: Loom_Transfer_VerbsBackendOffer {
        var port = Loom_Transfer_VerbsBackendOffer()
        port.device = name
        port.portNum = 1
        port.lid = 7
        port.mtu = 5
        return port
    }

    // MARK: what tests read and script

    var calls: [String] { script.withLock { $0.calls } }
    var states: [QueuePairState] { script.withLock { $0.states } }
    var posted: [UInt64] { script.withLock { $0.posted.map(\.request.id) } }
    var postedRequests: [VerbsWorkRequest] { script.withLock { $0.posted.map(\.request) } }
    var liveRegistrations: Int { script.withLock { $0.registrations.count } }
    var queuePairCount: Int { script.withLock { $0.queuePairs.count } }
    var queuePairNumbers: Set<UInt32> { script.withLock { Set($0.queuePairs.keys) } }
    var isClosed: Bool { script.withLock { $0.closed } }
    var unreachable: Bool {
        get { script.withLock { $0.unreachable } }
        set { script.withLock { $0.unreachable = newValue } }
    }
    var queueFullOnce: Set<UInt64> {
        get { script.withLock { $0.queueFullOnce } }
        set { script.withLock { $0.queueFullOnce = newValue } }
    }
    var refuseNextPosts: Int {
        get { script.withLock { $0.refuseNextPosts } }
        set { script.withLock { $0.refuseNextPosts = newValue } }
    }
    var failModifyTo: QueuePairState? {
        get { script.withLock { $0.failModifyTo } }
        set { script.withLock { $0.failModifyTo = newValue } }
    }

    func receiveTag(of qp: UInt32) -> UInt64 { script.withLock { $0.queuePairs[qp]?.receiveTag ?? 0 } }
    func receivesPosted(on qp: UInt32) -> Int { script.withLock { $0.queuePairs[qp]?.receives ?? 0 } }

    /// Queues the completion of a posted write, for the next poll.
    func complete(_ id: UInt64, status: VerbsCompletion.Status = .success) {
        script.withLock { script in
            let qp = script.posted.last { $0.request.id == id }?.qp ?? 0
            script.completions.append(VerbsCompletion(workRequestID: id, status: status, queuePair: qp))
        }
    }

    /// Queues a receive completion, as a peer's WRITE WITH IMM makes one;
    /// `tag` defaults to the queue pair's current receives'.
    func deliverImmediate(_ immediate: UInt32, on qp: UInt32, tag: UInt64? = nil, status: VerbsCompletion.Status = .success) {
        script.withLock { script in
            let tag = tag ?? script.queuePairs[qp]?.receiveTag ?? 0
            script.completions.append(VerbsCompletion(workRequestID: tag, status: status, queuePair: qp, immediate: status == .success ? immediate : nil))
        }
    }

    /// Queues an asynchronous event for the progress thread's next look.
    func report(_ event: VerbsEvent) {
        script.withLock { $0.events.append(event) }
    }

    // MARK: VerbsDevice

    func events() throws(VerbsFailure) -> [VerbsEvent] {
        script.withLock { script in
            defer { script.events = [] }
            return script.events
        }
    }

    func createQueuePair(sendQueueDepth: Int, receiveDepth: Int) throws(VerbsFailure) -> (qp: UInt32, psn: UInt32) {
        script.withLock { script in
            defer { script.nextNumber += 1 }
            script.queuePairs[script.nextNumber] = QueuePair()
            return (script.nextNumber, 1000 + script.nextNumber)
        }
    }

    func destroyQueuePair(_ qp: UInt32) {
        script.withLock { _ = $0.queuePairs.removeValue(forKey: qp) }
    }

    func modify(_ qp: UInt32, to state: QueuePairState, remote: Loom_Transfer_VerbsBackendOffer?) throws(VerbsFailure) {
        let result: Result<Void, VerbsFailure> = script.withLock { script in
            if state == script.failModifyTo {
                script.failModifyTo = nil
                return .failure(VerbsFailure(.fatal("modify to \(state) failed")))
            }
            if state == .readyToReceive, remote == nil { return .failure(VerbsFailure(.fatal("RTR needs the remote QP"))) }
            script.calls.append("modify \(state) remoteQP=\(remote.map { "\($0.qpNum)" } ?? "-")")
            script.states.append(state)
            var pair = script.queuePairs[qp, default: QueuePair()]
            if state == .error { Self.toError(&pair, qp, &script) }
            pair.state = state
            if let remote { pair.remote = remote }
            if state == .reset { pair.receives = 0 }
            script.queuePairs[qp] = pair
            return .success(())
        }
        try result.get()
    }

    func postWrite(_ qp: UInt32, _ request: VerbsWorkRequest) throws(VerbsFailure) {
        let accepted: Result<Loom_Transfer_VerbsBackendOffer?, VerbsFailure> = script.withLock { script in
            if script.closed { return .failure(VerbsFailure(.fatal("device closed"))) }
            if script.queueFullOnce.remove(request.id) != nil { return .failure(VerbsFailure(.sendQueueFull)) }
            if script.refuseNextPosts > 0 {
                script.refuseNextPosts -= 1
                return .failure(VerbsFailure(.sendQueueFull))
            }
            script.posted.append((qp, request))
            return .success(script.queuePairs[qp]?.remote)
        }
        let remote = try accepted.get()
        guard let network, let remote else { return }
        // Outside our lock: landing takes the peer's.
        let status = network.deliver(request, to: remote)
        script.withLock { $0.completions.append(VerbsCompletion(workRequestID: request.id, status: status, queuePair: qp)) }
    }

    func postReceives(_ qp: UInt32, count: Int, tag: UInt64) throws(VerbsFailure) {
        script.withLock { script in
            script.calls.append("recv \(count)")
            script.queuePairs[qp, default: QueuePair()].receives += count
            script.queuePairs[qp, default: QueuePair()].receiveTag = tag
        }
    }

    func register(_ memory: UnsafeMutableRawBufferPointer, remoteWrite: Bool) throws(VerbsFailure) -> VerbsMemoryRegistration {
        script.withLock { script in
            defer { script.nextNumber += 1 }
            script.registrations[script.nextNumber] = (UInt(bitPattern: memory.baseAddress), memory.count, remoteWrite)
            return VerbsMemoryRegistration(localKey: script.nextNumber, remoteKey: script.nextNumber, handle: UInt(script.nextNumber))
        }
    }

    func deregister(_ registration: VerbsMemoryRegistration) {
        script.withLock { _ = $0.registrations.removeValue(forKey: registration.remoteKey) }
    }

    func poll(max: Int, waitMilliseconds: Int32) throws(VerbsFailure) -> [VerbsCompletion] {
        let polled: [VerbsCompletion] = script.withLock { script in
            let taken = Array(script.completions.prefix(max))
            script.completions.removeFirst(taken.count)
            return taken
        }
        if polled.isEmpty { usleep(UInt32(min(waitMilliseconds, 2)) * 1000) }
        return polled
    }

    func close() {
        script.withLock { script in
            script.closed = true
            script.queuePairs = [:]
            script.registrations = [:]
        }
    }

    /// ERROR flushes every posted receive.
    private static func toError(_ pair: inout QueuePair, _ qp: UInt32, _ script: inout Script) {
        pair.state = .error
        for _ in 0..<pair.receives {
            script.completions.append(VerbsCompletion(workRequestID: pair.receiveTag, status: .flushed, queuePair: qp))
        }
        pair.receives = 0
    }

    /// A peer's write arriving: checked and copied like an RDMA WRITE.
    fileprivate func land(_ request: VerbsWorkRequest, on qp: UInt32) -> VerbsCompletion.Status {
        script.withLock { script in
            guard !script.closed, !script.unreachable, var pair = script.queuePairs[qp], pair.state == .readyToSend else { return .retryExceeded }
            if request.length > 0 {
                guard let region = script.registrations[request.remoteKey], region.remoteWrite,
                      request.remoteAddress >= UInt64(region.address),
                      request.remoteAddress + UInt64(request.length) <= UInt64(region.address) + UInt64(region.count) else {
                    // An RC responder that NAKs a write for its rkey or
                    // range puts its own queue pair in ERROR too.
                    Self.toError(&pair, qp, &script)
                    script.queuePairs[qp] = pair
                    return .remoteAccessError
                }
                UnsafeMutableRawPointer(bitPattern: UInt(request.remoteAddress))!
                    .copyMemory(from: UnsafeRawPointer(bitPattern: UInt(request.localAddress))!, byteCount: request.length)
            }
            if let immediate = request.immediate {
                // Real RC would retry until a receive is posted (rnr_retry 7).
                guard pair.receives > 0 else { return .retryExceeded }
                pair.receives -= 1
                script.completions.append(VerbsCompletion(workRequestID: pair.receiveTag, status: .success, queuePair: qp, immediate: immediate))
            }
            script.queuePairs[qp] = pair
            return .success
        }
    }
}
