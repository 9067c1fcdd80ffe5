import LoomWire
import Synchronization

/// One RC queue pair towards one peer, with the writes in flight on it.
/// The queue pair's machine and the device calls it makes run under one
/// lock; what finished is delivered after the lock is released, so a
/// resumed caller never runs while the lock is held.
final class VerbsConnection: Sendable {
    private struct State {
        var queuePair: VerbsQueuePair
        /// The batch each posted or waiting work request belongs to.
        var batches: [UInt64: VerbsWriteBatch] = [:]
    }

    private struct Delivery {
        var finished: [(VerbsWriteBatch, Result<Void, TransferError>)] = []
        var immediates: [UInt32] = []
    }

    let qp: UInt32
    private let state: Mutex<State>
    private let onImmediate: @Sendable (UInt32) -> Void

    init(_ queuePair: VerbsQueuePair, onImmediate: @escaping @Sendable (UInt32) -> Void) {
        qp = queuePair.qp
        state = Mutex(State(queuePair: queuePair))
        self.onImmediate = onImmediate
    }

    var machine: QueuePairStateMachine { state.withLock { $0.queuePair.machine } }
    var isUp: Bool { state.withLock { $0.queuePair.machine.state == .readyToSend } }

    /// Brings the queue pair up; throws if it could not be.
    func connect() throws(TransferError) {
        let (delivery, machine) = state.withLock { state in
            let events = state.queuePair.connect()
            return (Self.collect(events, &state), state.queuePair.machine)
        }
        deliver(delivery)
        guard machine.state == .readyToSend else {
            throw TransferError(.peerUnavailable, "could not bring RDMA queue pair \(qp) up towards the peer: \(machine.failure ?? "unknown error")")
        }
    }

    /// Posts `segments` as RDMA WRITEs, the last one WITH IMM when there is
    /// an immediate (no segments: a zero-length write carries it alone),
    /// and returns once all completed. `ids` are this write's work request
    /// ids, one per segment (or one for the immediate alone).
    func write(_ segments: [VerbsSegment], immediate: UInt32?, ids: Range<UInt64>, device: any VerbsDevice) async throws {
        let batch = try VerbsWriteBatch(segments, requests: ids.count, device: device)
        let requests = Self.requests(segments, sources: batch.sourceKeys, immediate: immediate, ids: ids)
        let delivery = state.withLock { state in
            var events: [VerbsQueuePair.Event] = []
            for request in requests {
                state.batches[request.id] = batch
                events += state.queuePair.submit(request)
            }
            return Self.collect(events, &state)
        }
        deliver(delivery)
        try await batch.wait()
    }

    static func requests(_ segments: [VerbsSegment], sources: [(address: UInt64, key: UInt32)], immediate: UInt32?, ids: Range<UInt64>) -> [VerbsWorkRequest] {
        guard !segments.isEmpty else {
            // A zero-length write names no remote memory: the peer checks no key.
            return [VerbsWorkRequest(id: ids.lowerBound, remoteAddress: 0, remoteKey: 0, length: 0, immediate: immediate)]
        }
        return zip(segments.indices, ids).map { index, id in
            let segment = segments[index]
            // RC places a queue pair's writes in order, so when the peer sees
            // the last write's immediate, the earlier writes' bytes are there.
            return VerbsWorkRequest(
                id: id, localAddress: sources[index].address, localKey: sources[index].key,
                remoteAddress: segment.remoteAddress, remoteKey: segment.remoteKey, length: segment.bytes.readableBytes,
                immediate: index == segments.count - 1 ? immediate : nil)
        }
    }

    /// Completions the endpoint polled for this queue pair, in order.
    func completed(_ completions: [VerbsCompletion]) {
        let delivery = state.withLock { state in
            var events: [VerbsQueuePair.Event] = []
            for completion in completions { events += state.queuePair.completed(completion) }
            return Self.collect(events, &state)
        }
        deliver(delivery)
    }

    /// Fails everything pending and leaves the queue pair in ERROR.
    func fail(reason: String) {
        let delivery = state.withLock { state in Self.collect(state.queuePair.fail(reason: reason), &state) }
        deliver(delivery)
    }

    private static func collect(_ events: [VerbsQueuePair.Event], _ state: inout State) -> Delivery {
        var delivery = Delivery()
        for event in events {
            switch event {
            case .finished(let id, let result):
                if let batch = state.batches.removeValue(forKey: id) { delivery.finished.append((batch, result)) }
            case .immediate(let value):
                delivery.immediates.append(value)
            }
        }
        return delivery
    }

    private func deliver(_ delivery: Delivery) {
        for (batch, result) in delivery.finished { batch.finished(result) }
        for immediate in delivery.immediates { onImmediate(immediate) }
    }
}
