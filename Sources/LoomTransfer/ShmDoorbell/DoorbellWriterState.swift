import LoomWire

/// The writer's side of a doorbell as plain state, changed only under the
/// writer's lock: its ring indices, the writes still to publish, and the
/// writes waiting for an acknowledgement. Every change returns the
/// continuations to resume, which the caller does after letting go of the lock.
struct DoorbellWriterState: Sendable {
    struct Waiter: Sendable {
        let continuation: CheckedContinuation<Void, Error>
        let deadline: ContinuousClock.Instant
    }

    /// A write's records, in order; only the first submission in line may
    /// be partly published, so chains never interleave.
    struct Submission: Sendable {
        let ticket: UInt64
        let records: [CommitRecord]
        var published = 0
    }

    /// Writes to resume, with the error each failed with (nil: applied).
    typealias Settled = [(CheckedContinuation<Void, Error>, TransferError?)]

    var commitHead: UInt64 = 0
    var ackTail: UInt64 = 0
    var nextTicket: UInt64 = 1
    var pending: [Submission] = []
    var waiters: [UInt64: Waiter] = [:]
    /// Why the doorbell stopped; writes after that fail at once.
    var closed: String?
    /// When the writer's thread, asleep or about to be, looks again by
    /// itself; nil after a pass that found work. A write due before then
    /// must ring it (a stale value only costs a spare ring).
    var wakeAt: ContinuousClock.Instant?

    /// Queues a write and publishes what fits. Returns whether records were
    /// published (the target's bell is then rung), whether the writer's own
    /// thread must be rung to notice the write's deadline in time, and what
    /// to resume.
    mutating func submit(
        opID: UInt64, immediate: UInt32?, segments: [Loom_Transfer_WriteSegment],
        continuation: CheckedContinuation<Void, Error>, deadline: ContinuousClock.Instant, commits: DoorbellRing
    ) -> (published: Bool, wakeWriter: Bool, settled: Settled) {
        if let closed {
            return (false, false, [(continuation, TransferError(.peerUnavailable, "the shm doorbell is closed (\(closed)); write \(opID) was not sent"))])
        }
        let ticket = nextTicket
        nextTicket += 1
        waiters[ticket] = Waiter(continuation: continuation, deadline: deadline)
        pending.append(Submission(ticket: ticket, records: CommitRecord.records(ticket: ticket, opID: opID, immediate: immediate, segments: segments)))
        let wakeWriter = wakeAt.map { deadline < $0 } ?? false
        do {
            return (try publish(commits), wakeWriter, [])
        } catch {
            return (false, false, close(because: error.message))
        }
    }

    /// Publishes as many queued records as the ring has room for.
    mutating func publish(_ commits: DoorbellRing) throws(TransferError) -> Bool {
        var free = try commits.free(head: commitHead)
        let before = commitHead
        while free > 0, !pending.isEmpty {
            let count = min(free, pending[0].records.count - pending[0].published)
            for record in pending[0].records[pending[0].published..<pending[0].published + count] {
                record.encode(into: commits.slot(commitHead))
                commitHead += 1
            }
            pending[0].published += count
            free -= count
            if pending[0].published == pending[0].records.count { pending.removeFirst() }
        }
        guard commitHead != before else { return false }
        commits.publish(head: commitHead)
        return true
    }

    /// Takes every acknowledgement posted so far, in whatever order the
    /// target settled the writes. One for a write nobody waits for any more
    /// (it timed out) is dropped. `targetMayWait`: the ring was too full
    /// for the target to take another record, so it needs ringing; any
    /// other time a ring would only wake it for nothing.
    mutating func drain(_ acks: DoorbellRing) throws(TransferError) -> (consumed: Bool, targetMayWait: Bool, settled: Settled) {
        let ready = try acks.ready(tail: ackTail)
        guard ready > 0 else { return (false, false, []) }
        var settled: Settled = []
        for _ in 0..<ready {
            let ack = AckRecord.decode(from: acks.slot(ackTail))
            ackTail += 1
            guard let waiter = waiters.removeValue(forKey: ack.ticket) else { continue }
            switch ack.outcome {
            case .applied: settled.append((waiter.continuation, nil))
            case .refused(let error): settled.append((waiter.continuation, error))
            }
        }
        acks.release(tail: ackTail)
        return (true, acks.count - ready < DoorbellGeometry.acksPerRecord, settled)
    }

    /// Fails the writes whose acknowledgement is overdue. One never
    /// published is dropped from the queue; a chain already started must
    /// still be finished, or the target would read the next write's records
    /// as breaking it.
    mutating func expire(now: ContinuousClock.Instant, ackTimeout: Duration) -> Settled {
        // Checked before filtering: this runs on every pass of the thread.
        guard waiters.values.contains(where: { $0.deadline <= now }) else { return [] }
        return waiters.filter { $0.value.deadline <= now }.map { ticket, waiter in
            waiters.removeValue(forKey: ticket)
            let unsent = pending.firstIndex { $0.ticket == ticket && $0.published == 0 }
            if let unsent { pending.remove(at: unsent) }
            let left = unsent == nil ? "it may or may not have landed" : "the target never took it (its ring stayed full)"
            return (waiter.continuation, TransferError(.ackLost, "no acknowledgement within \(ackTimeout); \(left). It is not retried"))
        }
    }

    /// Stops the doorbell: a write the target never saw failed with
    /// `peerUnavailable`, one it may have applied with `ackLost`.
    mutating func close(because reason: String) -> Settled {
        if closed == nil { closed = reason }
        let unsent = Set(pending.filter { $0.published == 0 }.map(\.ticket))
        defer {
            waiters = [:]
            pending = []
        }
        return waiters.map { ticket, waiter in
            let error = unsent.contains(ticket)
                ? TransferError(.peerUnavailable, "the shm doorbell closed before the write was sent: \(reason)")
                : TransferError(.ackLost, "the shm doorbell closed while the write waited for its acknowledgement (\(reason)); it may or may not have landed and is not retried")
            return (waiter.continuation, error)
        }
    }

    var nextDeadline: ContinuousClock.Instant? { waiters.values.min { $0.deadline < $1.deadline }?.deadline }

    /// Whether the writer's thread has anything to do without being rung.
    func hasWork(_ mapping: DoorbellMapping) -> Bool {
        guard closed == nil, !mapping.isRaised(.targetClosed) else { return true }
        let acks = (try? mapping.acks.ready(tail: ackTail)) ?? 1
        let room = pending.isEmpty ? 0 : (try? mapping.commits.free(head: commitHead)) ?? 1
        return acks > 0 || room > 0
    }
}
