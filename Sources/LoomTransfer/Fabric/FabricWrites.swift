import CLoomFabric
import NIOConcurrencyHelpers
import NIOCore

/// One RMA write as the endpoint posts it.
struct FabricWrite: Sendable {
    var bytes: ByteBuffer
    var peer: UInt64
    var remoteAddress: UInt64
    var key: UInt64
    /// Remote completion data: the peer is told this write landed.
    var data: UInt64?
}

/// Writes posted together and waited on together: the caller resumes when
/// all are acknowledged, or at the first failure. The batch keeps their
/// bytes (and source registrations) alive until the provider is done with
/// every one of them, even after the caller has given up.
final class FabricWriteBatch: Sendable {
    private enum Outcome {
        case waiting(CheckedContinuation<Void, Error>?)
        case done(Result<Void, TransferError>)
    }

    let writes: [FabricWrite]
    let sources: [FabricEndpoint.Registration]
    /// The writes posted as one each: see `grouped`.
    let groups: [Range<Int>]
    private let outcome = NIOLockedValueBox(Outcome.waiting(nil))

    init(writes: [FabricWrite], sources: [FabricEndpoint.Registration], segmentsPerWrite: Int) {
        self.writes = writes
        self.sources = sources
        groups = Self.grouped(writes, limit: segmentsPerWrite)
    }

    /// Runs of up to `limit` consecutive writes to one peer, each posted as
    /// one gathering write: fewer posts and acknowledgements per byte. A
    /// write carrying data ends its run, so the data covers exactly the
    /// bytes written before it.
    static func grouped(_ writes: [FabricWrite], limit: Int) -> [Range<Int>] {
        var groups: [Range<Int>] = []
        var start = 0
        for index in writes.indices {
            let next = index + 1
            let full = next - start == limit
            if full || next == writes.count || writes[index].data != nil || writes[next].peer != writes[index].peer {
                groups.append(start..<next)
                start = next
            }
        }
        return groups
    }

    func succeed() { resolve(.success(())) }
    func fail(_ error: TransferError) { resolve(.failure(error)) }

    /// The first outcome wins; later ones (more failures) are dropped.
    private func resolve(_ result: Result<Void, TransferError>) {
        let waiter: CheckedContinuation<Void, Error>?? = outcome.withLockedValue { outcome in
            guard case .waiting(let waiter) = outcome else { return .none }
            outcome = .done(result)
            return .some(waiter)
        }
        if case .some(.some(let continuation)) = waiter { continuation.resume(with: result.mapError { $0 as Error }) }
    }

    /// Resolved: the caller can take the outcome without parking.
    var isDone: Bool {
        outcome.withLockedValue { if case .done = $0 { true } else { false } }
    }

    func wait() async throws {
        // Resolved while the caller polled: no suspension, no hop.
        if let done = outcome.withLockedValue({ outcome -> Result<Void, TransferError>? in
            if case .done(let result) = outcome { result } else { nil }
        }) { return try done.get() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let done: Result<Void, TransferError>? = outcome.withLockedValue { outcome in
                    if case .done(let result) = outcome { return result }
                    outcome = .waiting(continuation)
                    return nil
                }
                if let done { continuation.resume(with: done.mapError { $0 as Error }) }
            }
        } onCancel: {
            fail(TransferError(.ackLost, "cancelled while waiting for a fabric write's acknowledgement; it may or may not have landed"))
        }
    }
}

/// Writes in flight, by the token each was posted with.
struct PendingWrites {
    private struct Live {
        let batch: FabricWriteBatch
        var remaining: Int
        var deadline: NIODeadline?
    }

    private var nextToken: UInt64 = 1
    private var batchOf: [UInt64: ObjectIdentifier] = [:]
    private var live: [ObjectIdentifier: Live] = [:]

    /// Tokens for `count` writes of `batch`, which fails at `deadline`.
    mutating func add(_ batch: FabricWriteBatch, count: Int, deadline: NIODeadline) -> Range<UInt64> {
        let tokens = nextToken..<nextToken + UInt64(count)
        nextToken += UInt64(count)
        let id = ObjectIdentifier(batch)
        for token in tokens { batchOf[token] = id }
        live[id] = Live(batch: batch, remaining: count, deadline: deadline)
        return tokens
    }

    /// The batch of a completed write, and whether it was the batch's last.
    mutating func complete(token: UInt64) -> (FabricWriteBatch, Bool)? {
        guard let id = batchOf.removeValue(forKey: token), var entry = live[id] else { return nil }
        entry.remaining -= 1
        live[id] = entry.remaining == 0 ? nil : entry
        return (entry.batch, entry.remaining == 0)
    }

    /// Forgets writes that were never posted.
    mutating func abandon(_ tokens: some Sequence<UInt64>) {
        for token in tokens { _ = complete(token: token) }
    }

    /// Batches past their deadline, each reported once; they stay tracked
    /// until their writes complete, because the provider may still read
    /// their bytes.
    mutating func expire(now: NIODeadline) -> [FabricWriteBatch] {
        var expired: [FabricWriteBatch] = []
        for (id, entry) in live {
            guard let deadline = entry.deadline, deadline <= now else { continue }
            expired.append(entry.batch)
            live[id]?.deadline = nil
        }
        return expired
    }

    mutating func removeAll() -> [FabricWriteBatch] {
        defer { live = [:]; batchOf = [:] }
        return live.values.map(\.batch)
    }
}

extension FabricEndpoint {
    /// Posts `writes` and returns once all are acknowledged. The provider
    /// acknowledges a write only once it is placed in the target's memory
    /// (delivery complete): with anything less a write to a dead peer or a
    /// revoked key reports success. A full send queue is waited out until
    /// `timeout`; a write not acknowledged by then fails with `ackLost`.
    func post(_ writes: [FabricWrite], timeout: Duration) async throws {
        let deadline = NIODeadline.now() + .nanoseconds(Int64(timeout.wholeMicroseconds) * 1000)
        let sources = try capabilities.registersSources ? writes.map(registerSource) : []
        let batch = FabricWriteBatch(writes: writes, sources: sources, segmentsPerWrite: capabilities.segmentsPerWrite)
        let groups = batch.groups.count
        let tokens = pending.withLockedValue { $0.add(batch, count: groups, deadline: deadline) }
        var next = 0
        while next < groups {
            let (posted, result) = try postSome(batch, from: next, tokens: tokens)
            next += posted
            guard result == -Int(loom_fabric_eagain()) else { break }
            if NIODeadline.now() >= deadline {
                pending.withLockedValue { $0.abandon(tokens.dropFirst(next)) }
                throw TransferError(next == 0 ? .peerUnavailable : .ackLost,
                                    "the fabric send queue stayed full for \(timeout) with \(groups - next) of \(groups) writes unposted; the peer may be gone")
            }
            try await Task.sleep(for: .microseconds(20))
        }
        // The acknowledgement usually follows within a round trip: reading
        // it here saves the progress thread's wake-up and a resume from it.
        _ = poll(until: { batch.isDone })
        try await batch.wait()
    }

    /// Posts the batch's groups from `first` on until the queue is full or
    /// one fails; returns how many were posted and the last result (0 when
    /// all were).
    private func postSome(_ batch: FabricWriteBatch, from first: Int, tokens: Range<UInt64>) throws -> (Int, Int) {
        try withHandle("write") { handle in
            for index in first..<batch.groups.count {
                let result = post(batch.groups[index], of: batch, token: tokens.lowerBound + UInt64(index), handle)
                if result == 0 { continue }
                if result != -Int(loom_fabric_eagain()) {
                    pending.withLockedValue { $0.abandon(tokens.dropFirst(index)) }
                    batch.fail(TransferError(index == first && first == 0 ? .peerUnavailable : .ackLost,
                                             "libfabric refused to post a write: \(Self.describe(result))"))
                }
                return (index - first, result)
            }
            return (batch.groups.count - first, 0)
        }
    }

    /// One fi_writemsg gathering the group's writes; the last one's data
    /// (if any) rides on it.
    private func post(_ group: Range<Int>, of batch: FabricWriteBatch, token: UInt64, _ handle: OpaquePointer) -> Int {
        withUnsafeTemporaryAllocation(of: loom_fabric_segment.self, capacity: group.count) { segments in
            for (slot, index) in group.enumerated() {
                let write = batch.writes[index]
                // The pointer outlives this closure: the batch keeps the
                // buffer alive, unmodified, until the write completes.
                let base = write.bytes.withUnsafeReadableBytes { $0.baseAddress }
                let descriptor = batch.sources.isEmpty ? nil : UnsafeMutableRawPointer(bitPattern: batch.sources[index].descriptor)
                segments[slot] = loom_fabric_segment(buffer: base, length: write.bytes.readableBytes, descriptor: descriptor,
                                                     remote_address: write.remoteAddress, key: write.key)
            }
            let last = batch.writes[group.upperBound - 1]
            let flags = Int32(LOOM_FABRIC_DELIVERY_COMPLETE) | (last.data == nil ? 0 : Int32(LOOM_FABRIC_WITH_DATA))
            return loom_fabric_write(handle, segments.baseAddress, group.count, last.peer, last.data ?? 0, flags, token)
        }
    }

    private func registerSource(_ write: FabricWrite) throws(TransferError) -> Registration {
        try write.bytes.withUnsafeReadableBytes { bytes throws(TransferError) in
            try register(UnsafeMutableRawBufferPointer(mutating: bytes), remoteWrite: false)
        }
    }
}
