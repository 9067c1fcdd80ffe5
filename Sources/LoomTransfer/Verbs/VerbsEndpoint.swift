import Foundation
import LoomWire
import NIOConcurrencyHelpers
import Synchronization

/// The process's door for the `verbs` backend: one RDMA device, its queue
/// pairs (one per peer, RC being point to point) and a dedicated thread
/// that drives the shared completion queue. That thread completes this
/// side's writes and hands peers' immediates to `onImmediate`; it keeps
/// the endpoint alive, so call `close()` when done.
public final class VerbsEndpoint: Sendable {
    public let device: any VerbsDevice
    public let sendQueueDepth: Int
    public let receiveDepth: Int
    private let queuePairs = Mutex(QueuePairs())
    private let immediateHandler = Mutex<Handler<UInt32>?>(nil)
    private let nextWorkRequest = Atomic<UInt64>(1)
    private let stopped = Atomic<Bool>(false)
    private let progressExited = ConditionLock(value: false)

    private struct QueuePairs {
        var connected: [UInt32: VerbsConnection] = [:]
        /// Created by `openQueuePair`, not yet connected.
        var opened: Set<UInt32> = []
        /// Being created, and already counted against the completion queue.
        var creating = 0
        var count: Int { connected.count + opened.count + creating }
        /// Why no queue pair can be opened now: the port is down (until it
        /// is back up) or the device failed (for good).
        var portDown: String?
        var deviceFailed: String?
    }

    /// How long the progress thread blocks in the completion channel when
    /// idle: the bound on noticing a close.
    static let idleWaitMilliseconds: Int32 = 50

    /// Starts the progress thread. `receiveDepth` receives stay posted per
    /// queue pair: a peer may have that many immediates in flight before it
    /// waits for us (receiver-not-ready retries, not failures).
    public init(device: any VerbsDevice, sendQueueDepth: Int = 128, receiveDepth: Int = 512) {
        self.device = device
        self.sendQueueDepth = sendQueueDepth
        self.receiveDepth = receiveDepth
        let progress = Thread { [self] in runProgress() }
        progress.name = "loom-verbs-progress"
        progress.start()
    }

    /// This endpoint's port as a HELLO offer; queue pairs are set up per
    /// peer afterwards (`VerbsTarget.connectMethod`).
    public var offer: Loom_Transfer_BackendOffer {
        var offer = Loom_Transfer_BackendOffer()
        offer.verbs = device.port
        return offer
    }

    /// Called on the progress thread with each immediate a peer's write carried.
    public func onImmediate(_ handler: @escaping @Sendable (UInt32) -> Void) {
        immediateHandler.withLock { $0 = Handler(handler) }
    }

    /// A new queue pair for one peer: what to tell that peer about it.
    /// Refused when the shared completion queue could overflow: an overrun
    /// breaks the device for every queue pair, so room is checked first.
    public func openQueuePair() throws(TransferError) -> Loom_Transfer_VerbsBackendOffer {
        guard !stopped.load(ordering: .acquiring) else { throw Self.closedError }
        let room = device.completionQueueDepth / (sendQueueDepth + receiveDepth)
        let refusal = queuePairs.withLock { queuePairs -> String? in
            if let failed = queuePairs.deviceFailed { return "the RDMA device failed (\(failed)); restart with a working device" }
            if let down = queuePairs.portDown { return "the RDMA port is down (\(down)); writes resume once its link is back" }
            guard queuePairs.count < room else {
                return "the RDMA completion queue (\(device.completionQueueDepth) entries) has room for \(room) queue pairs of \(sendQueueDepth) sends and \(receiveDepth) receives, all in use; open the device with a deeper completion queue"
            }
            queuePairs.creating += 1
            return nil
        }
        if let refusal { throw TransferError(.peerUnavailable, refusal) }
        let outcome = Result { () throws(VerbsFailure) in
            try device.createQueuePair(sendQueueDepth: sendQueueDepth, receiveDepth: receiveDepth)
        }
        queuePairs.withLock { queuePairs in
            queuePairs.creating -= 1
            if case .success(let created) = outcome { queuePairs.opened.insert(created.qp) }
        }
        let created: (qp: UInt32, psn: UInt32)
        switch outcome {
        case .success(let made): created = made
        case .failure(let error): throw TransferError(.peerUnavailable, "could not create an RDMA queue pair: \(error)")
        }
        var offer = device.port
        offer.qpNum = created.qp
        offer.psn = created.psn
        return offer
    }

    /// Brings a queue pair from `openQueuePair` up towards the peer's.
    public func connect(_ qp: UInt32, to remote: Loom_Transfer_VerbsBackendOffer) throws(TransferError) {
        let queuePair = VerbsQueuePair(device: device, qp: qp, remote: remote, sendQueueDepth: sendQueueDepth, receiveDepth: receiveDepth)
        let connection = VerbsConnection(queuePair) { [weak self] immediate in
            self?.immediateHandler.withLock { $0 }?.call(immediate)
        }
        // Registered before it is brought up: completions may come as soon
        // as it is in RTR.
        let known = queuePairs.withLock { queuePairs in
            guard queuePairs.opened.remove(qp) != nil else { return false }
            queuePairs.connected[qp] = connection
            return true
        }
        guard known else {
            throw TransferError(.invalidRequest, "RDMA queue pair \(qp) was not opened here or is already connected")
        }
        do throws(TransferError) {
            try connection.connect()
        } catch {
            closeQueuePair(qp)
            throw error
        }
    }

    /// Fails the queue pair's pending writes and destroys it.
    public func closeQueuePair(_ qp: UInt32) {
        let (connection, wasOpen) = queuePairs.withLock { queuePairs in
            (queuePairs.connected.removeValue(forKey: qp), queuePairs.opened.remove(qp) != nil)
        }
        guard connection != nil || wasOpen else { return }
        connection?.fail(reason: "the queue pair was closed with the write in flight")
        device.destroyQueuePair(qp)
    }

    private func connection(_ qp: UInt32) -> VerbsConnection? {
        queuePairs.withLock { $0.connected[qp] }
    }

    /// Whether a connected queue pair can take writes; one that failed
    /// never can again.
    func isUp(_ qp: UInt32) -> Bool {
        connection(qp)?.isUp ?? false
    }

    /// The state machine of a connected queue pair, for status and tests.
    public func machine(of qp: UInt32) -> QueuePairStateMachine? {
        connection(qp)?.machine
    }

    func write(on qp: UInt32, _ segments: [VerbsSegment], immediate: UInt32?) async throws {
        guard !segments.isEmpty || immediate != nil else { return }
        guard let connection = connection(qp) else {
            throw TransferError(.peerUnavailable, "RDMA queue pair \(qp) is closed")
        }
        let count = UInt64(max(segments.count, 1))
        let first = nextWorkRequest.wrappingAdd(count, ordering: .relaxed).oldValue
        try await connection.write(segments, immediate: immediate, ids: first..<first + count, device: device)
    }

    /// A memory registration that peers' writes name by its rkey. It is
    /// deregistered once, by `deregister()` or when released.
    public final class Registration: Sendable {
        public let keys: VerbsMemoryRegistration
        private let live = Atomic<Bool>(true)
        let device: any VerbsDevice

        init(keys: VerbsMemoryRegistration, device: any VerbsDevice) {
            self.keys = keys
            self.device = device
        }

        /// Revokes peers' access now; writes naming the rkey fail from here on.
        public func deregister() {
            guard live.exchange(false, ordering: .acquiringAndReleasing) else { return }
            device.deregister(keys)
        }

        deinit { deregister() }
    }

    public func register(_ memory: UnsafeMutableRawBufferPointer, remoteWrite: Bool) throws(TransferError) -> Registration {
        do throws(VerbsFailure) {
            return Registration(keys: try device.register(memory, remoteWrite: remoteWrite), device: device)
        } catch {
            throw TransferError(.invalidRequest, "could not register \(memory.count) bytes with the RDMA device: \(error)")
        }
    }

    /// Stops the progress thread, fails every write still pending, and
    /// closes the device. Peers writing to it see their writes fail.
    public func close() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        progressExited.lock(whenValue: true)
        progressExited.unlock()
        let all = queuePairs.withLock { queuePairs in
            defer { queuePairs.connected = [:] }
            return Array(queuePairs.connected.values)
        }
        for connection in all { connection.fail(reason: "the verbs endpoint was closed with the write in flight") }
        device.close()
    }

    private static let closedError = TransferError(.peerUnavailable, "the verbs endpoint is closed")

    /// How often the progress thread looks for asynchronous events: a
    /// syscall, so not on every poll of a busy completion queue.
    static let eventInterval: Duration = .milliseconds(10)

    private func runProgress() {
        let clock = ContinuousClock()
        var nextEvents = clock.now
        while !stopped.load(ordering: .acquiring) {
            pollOnce(waitMilliseconds: Self.idleWaitMilliseconds)
            guard clock.now >= nextEvents else { continue }
            handleEvents()
            nextEvents = clock.now + Self.eventInterval
        }
        progressExited.lock()
        progressExited.unlock(withValue: true)
    }

    /// Reads what completed and hands each queue pair its completions, in
    /// the order the device reported them.
    func pollOnce(waitMilliseconds: Int32) {
        let completions: [VerbsCompletion]
        do throws(VerbsFailure) {
            completions = try device.poll(max: 64, waitMilliseconds: waitMilliseconds)
        } catch {
            // The completion queue itself broke: nothing on any queue pair
            // will complete. Waiting out the interval keeps this from spinning.
            failAll(reason: "polling the completion queue failed: \(error)")
            Thread.sleep(forTimeInterval: Double(waitMilliseconds) / 1000)
            return
        }
        guard !completions.isEmpty else { return }
        for (qp, ofQueuePair) in Dictionary(grouping: completions, by: \.queuePair) {
            if let connection = connection(qp) {
                connection.completed(ofQueuePair)
            } else {
                landedAfterClose(ofQueuePair)
            }
        }
    }

    /// What broke outside any work request: the queue pair it names, or
    /// every queue pair when the port or device went. Their writes fail
    /// now instead of at RC's retry timeout, and their writers set up
    /// fresh pairs (refused while the port is down).
    func handleEvents() {
        let events: [VerbsEvent]
        do throws(VerbsFailure) { events = try device.events() } catch { return }
        for event in events {
            switch event {
            case .queuePairFailed(let qp, let name):
                connection(qp)?.fail(reason: "the RDMA device reported \(name) on queue pair \(qp)")
            // Only this endpoint's port matters: another port of the same
            // device carries none of its queue pairs.
            case .portDown(let port, let name) where port == device.port.portNum:
                let why = "port \(port): \(name)"
                queuePairs.withLock { $0.portDown = why }
                failAll(reason: "the RDMA port went down (\(why))")
            case .portUp(let port) where port == device.port.portNum:
                queuePairs.withLock { $0.portDown = nil }
            case .portDown, .portUp:
                continue
            case .deviceFailed(let name):
                queuePairs.withLock { $0.deviceFailed = name }
                failAll(reason: "the RDMA device failed (\(name))")
            }
        }
    }

    private func failAll(reason: String) {
        for connection in queuePairs.withLock({ Array($0.connected.values) }) { connection.fail(reason: reason) }
    }

    /// Completions of a queue pair already closed. Its writes were failed
    /// when it closed, but a peer's write that completed a receive did land:
    /// a writer that disconnects right after its last write finishes can
    /// close our queue pair before we poll that write's immediate.
    private func landedAfterClose(_ completions: [VerbsCompletion]) {
        let handler = immediateHandler.withLock { $0 }
        for completion in completions where completion.isReceive && completion.status == .success {
            if let immediate = completion.immediate { handler?.call(immediate) }
        }
    }
}
