import Dispatch
import LoomWire
import NIOCore
import Synchronization

/// The writer's side of one data lane: a thread that sends queued parts in
/// order, straight from their buffers, and a thread that reads the target's
/// replies. Replies come in the order the parts went, so each one answers
/// the oldest part still waiting.
final class LaneWriter: Sendable {
    private struct Job {
        let head: [UInt8]
        let payload: [ByteBuffer]
    }

    /// A part sent or queued. Its caller is gone once the part timed out;
    /// the entry stays so that its late reply still lines up.
    private struct Waiting {
        let opID: UInt64
        var caller: CheckedContinuation<LaneFrames.Reply, Error>?
        let deadline: ContinuousClock.Instant
    }

    private struct State {
        var queue = CircularBuffer<Job>()
        var waiting = CircularBuffer<Waiting>()
        var failure: TransferError?
    }

    private let socket: LaneSocket
    private let ackTimeout: Duration
    private let state = Mutex(State())
    private let jobs = DispatchSemaphore(value: 0)
    private let threads = Mutex<[JoinableThread]>([])
    /// How often the reply thread checks deadlines while no reply comes.
    private static let sweepMilliseconds: Int32 = 100

    init(socket: LaneSocket, ackTimeout: Duration) {
        self.socket = socket
        self.ackTimeout = ackTimeout
        let sender = JoinableThread(name: "loom-tcp-lane-send") { [self] in sendParts() }
        let reader = JoinableThread(name: "loom-tcp-lane-replies") { [self] in readReplies() }
        threads.withLock { $0 = [sender, reader] }
    }

    /// Sends one part and returns the target's reply to it.
    func send(_ request: Loom_Transfer_WriteRequest, payload: [ByteBuffer]) async throws -> LaneFrames.Reply {
        let head = try LaneFrames.part(request, payloadLength: payload.reduce(0) { $0 + $1.readableBytes })
        let deadline = ContinuousClock.now + ackTimeout
        return try await withCheckedThrowingContinuation { caller in
            let failure = state.withLock { state -> TransferError? in
                if let failure = state.failure { return failure }
                state.waiting.append(Waiting(opID: request.opID, caller: caller, deadline: deadline))
                state.queue.append(Job(head: head, payload: payload))
                return nil
            }
            if let failure { caller.resume(throwing: failure) } else { jobs.signal() }
        }
    }

    /// Fails what is still waiting, stops both threads and closes the socket.
    func close() async {
        fail(TransferError(.peerUnavailable, "the tcp transport was closed with the write in flight"))
        for thread in threads.withLock({ $0 }) { await thread.join() }
        socket.close()
    }

    private func sendParts() {
        while true {
            jobs.wait()
            let next = state.withLock { state -> Job? in
                state.failure == nil ? state.queue.popFirst() : nil
            }
            guard let job = next else { return }
            do {
                try socket.send(job.head, more: !job.payload.isEmpty)
                for (index, buffer) in job.payload.enumerated() {
                    try buffer.withUnsafeReadableBytes { try socket.send($0, more: index < job.payload.count - 1) }
                }
            } catch {
                fail(error as? TransferError ?? TransferError(.peerUnavailable, "\(error)"))
                return
            }
        }
    }

    private func readReplies() {
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: LaneFrames.replyBytes, alignment: 8)
        defer { header.deallocate() }
        do throws(TransferError) {
            while true {
                guard socket.readable(within: Self.sweepMilliseconds) else {
                    if state.withLock({ $0.failure != nil }) { return }
                    expire(now: .now)
                    continue
                }
                try socket.receive(into: header)
                var (reply, textLength) = try LaneFrames.replyHeader(UnsafeRawBufferPointer(header))
                if textLength > 0 {
                    reply.text = String(decoding: try socket.receive(count: textLength), as: UTF8.self)
                }
                try answer(reply)
            }
        } catch {
            fail(error)
        }
    }

    private func answer(_ reply: LaneFrames.Reply) throws(TransferError) {
        let caller = try state.withLock { (state) throws(TransferError) -> CheckedContinuation<LaneFrames.Reply, Error>? in
            guard let oldest = state.waiting.popFirst(), oldest.opID == reply.opID else {
                throw LaneFrames.protocolError("a reply for write \(reply.opID) came when none or another was due")
            }
            return oldest.caller
        }
        caller?.resume(returning: reply)
    }

    /// Parts past their deadline fail as unacknowledged; they may have
    /// landed, and are not sent again.
    private func expire(now: ContinuousClock.Instant) {
        var expired: [(UInt64, CheckedContinuation<LaneFrames.Reply, Error>)] = []
        state.withLock { state in
            for index in state.waiting.indices where state.waiting[index].deadline < now {
                if let caller = state.waiting[index].caller { expired.append((state.waiting[index].opID, caller)) }
                state.waiting[index].caller = nil
            }
        }
        for (opID, caller) in expired {
            caller.resume(throwing: TransferError(.ackLost, "write \(opID) was sent but not acknowledged within \(ackTimeout); it may or may not have landed and is not retried"))
        }
    }

    /// The lane is done: everything waiting fails, and both threads stop.
    private func fail(_ error: TransferError) {
        let callers = state.withLock { state in
            if state.failure == nil { state.failure = error }
            state.queue.removeAll()
            defer { state.waiting.removeAll() }
            return state.waiting.compactMap { waiting in waiting.caller.map { (waiting.opID, $0) } }
        }
        socket.shutDown()
        jobs.signal()
        for (opID, caller) in callers {
            caller.resume(throwing: TransferError(.ackLost, "write \(opID) was not acknowledged: \(error.message); it may or may not have landed and is not retried"))
        }
    }
}
