import LoomWire
import Synchronization

/// The target's side of one writer's data lanes: a listener that takes the
/// writer's `lanes` sockets (each must open with the call's token), then a
/// thread per lane that reads a part's header, checks it with
/// `TransferTarget.prepare`, and has the kernel copy the payload straight
/// into the regions: one copy, as a plain socket reader makes.
final class LaneServer: Sendable {
    let port: Int
    let token: UInt64
    private let listener: LaneListener
    private let target: TransferTarget
    private let state = Mutex(State())
    private let accepting: Mutex<JoinableThread?> = Mutex(nil)

    private struct State {
        var stopped = false
        var listening = true
        var lanes: [Int32: LaneSocket] = [:]
        var threads: [JoinableThread] = []
    }

    init(host: String, lanes: Int, target: TransferTarget) throws(TransferError) {
        listener = try LaneListener(host: host)
        port = listener.port
        token = UInt64.random(in: 1...UInt64.max)
        self.target = target
        let thread = JoinableThread(name: "loom-tcp-lanes-accept") { [self] in accept(lanes) }
        accepting.withLock { $0 = thread }
    }

    /// Closes the listener and every lane; `join` waits for their threads.
    func stop() {
        state.withLock { state in
            state.stopped = true
            if state.listening { listener.socket.shutDown() }
            for lane in state.lanes.values { lane.shutDown() }
        }
    }

    /// Returns once every lane has ended: the writer closed them, or `stop`.
    func join() async {
        await accepting.withLock { $0 }?.join()
        for thread in state.withLock({ $0.threads }) { await thread.join() }
    }

    /// Takes sockets until `count` carried the token; others are closed.
    private func accept(_ count: Int) {
        var taken = 0
        while taken < count, let lane = listener.accept() {
            // Known before its greeting is read, so `stop` can wake that read.
            // Stopped: still leave through the end, which closes the listener.
            guard adopt(lane) else { break }
            if greets(lane) {
                state.withLock { $0.threads.append(JoinableThread(name: "loom-tcp-lane") { [self] in serve(lane) }) }
                taken += 1
            } else {
                drop(lane)
            }
        }
        // Under the lock, so `stop` never shuts down a reused fd number.
        state.withLock { state in
            state.listening = false
            listener.socket.close()
        }
    }

    private func adopt(_ lane: LaneSocket) -> Bool {
        let adopted = state.withLock { state in
            guard !state.stopped else { return false }
            state.lanes[lane.fd] = lane
            return true
        }
        if !adopted { lane.close() }
        return adopted
    }

    private func greets(_ lane: LaneSocket) -> Bool {
        let greeting = UnsafeMutableRawBufferPointer.allocate(byteCount: LaneFrames.headerBytes, alignment: 8)
        defer { greeting.deallocate() }
        let token = Result { () throws(TransferError) in
            try lane.receive(into: greeting)
            return try LaneFrames.token(ofGreeting: UnsafeRawBufferPointer(greeting))
        }
        guard case .success(let got) = token else { return false }
        return got == self.token
    }

    /// Under the lock, so `stop` never shuts down a reused fd number.
    private func drop(_ lane: LaneSocket) {
        state.withLock { state in
            state.lanes.removeValue(forKey: lane.fd)
            lane.close()
        }
    }

    /// Serves parts until the writer closes the lane or breaks its protocol.
    private func serve(_ lane: LaneSocket) {
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: LaneFrames.headerBytes, alignment: 8)
        defer {
            header.deallocate()
            drop(lane)
        }
        do throws(TransferError) {
            while true {
                try lane.receive(into: header)
                let part = try LaneFrames.partHeader(UnsafeRawBufferPointer(header))
                let reply = try land(part, from: lane)
                try lane.send(LaneFrames.encode(reply))
            }
        } catch {
            // The writer went away or broke the framing: this lane is done.
            // Its writes in flight fail on the writer's side.
        }
    }

    /// Reads one part's message and payload: into the regions when the
    /// write is accepted, into nowhere when it is refused or a duplicate.
    private func land(_ part: LaneFrames.PartHeader, from lane: LaneSocket) throws(TransferError) -> LaneFrames.Reply {
        let message = try lane.receive(count: part.messageLength)
        guard let request = try? Loom_Transfer_WriteRequest(serializedBytes: message) else {
            throw LaneFrames.protocolError("a part's message is not a WriteRequest")
        }
        let prepared: PreparedWrite
        do throws(TransferError) {
            prepared = try target.prepare(request, payloadLength: part.payloadLength)
        } catch {
            try lane.discard(part.payloadLength)
            return LaneFrames.Reply(opID: request.opID, code: error.code.rawValue, text: error.message)
        }
        if prepared.duplicate {
            // The first delivery landed these bytes; the owner may be using that memory by now.
            try lane.discard(part.payloadLength)
        } else {
            for (region, offset, length) in prepared.targets {
                try lane.receive(into: UnsafeMutableRawBufferPointer(rebasing: region.memory[offset..<offset + length]))
            }
        }
        let ack = target.complete(prepared)
        return LaneFrames.Reply(opID: ack.opID, duplicate: ack.duplicate)
    }
}
