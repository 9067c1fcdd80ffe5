import LoomWire

/// The target's reading of the commit ring: gathers chained records into
/// whole writes and refuses what a correct writer never sends. A value type
/// that returns what to do, so chains, broken chains and malformed records
/// are tested without threads or shared memory.
struct CommitAssembler {
    enum Action: Equatable {
        /// A whole write, to be checked against the region table and counted.
        case commit(ticket: UInt64, Loom_Transfer_WriteRequest)
        /// A write refused from its records alone; nothing was counted.
        case refuse(ticket: UInt64, opID: UInt64, TransferError)
    }

    private enum State {
        case idle
        case gathering(CommitRecord)
        /// The chain of a refused write: its later records are dropped.
        case skipping(ticket: UInt64)
    }

    /// Who every write on this doorbell comes from: named once at setup, so
    /// a record cannot claim another sender's deduplication window.
    let sender: String
    let senderEpoch: UInt64
    private var state = State.idle

    init(sender: String, senderEpoch: UInt64) {
        self.sender = sender
        self.senderEpoch = senderEpoch
    }

    /// At most two actions: a chain cut short by another write's record is
    /// refused, and then that record is read as the start of its own write.
    mutating func accept(_ record: CommitRecord) -> [Action] {
        switch state {
        case .skipping(let ticket) where record.ticket == ticket:
            if !record.continues { state = .idle }
            return []
        case .gathering(let partial) where record.ticket == partial.ticket:
            return extend(partial, with: record)
        case .gathering(let partial):
            let cut = refuse(partial, "the records of write \(partial.opID) stopped after \(partial.segments.count) of its \(partial.totalSegments) segments")
            return [cut] + start(record)
        case .idle, .skipping:
            return start(record)
        }
    }

    private mutating func start(_ record: CommitRecord) -> [Action] {
        if let flaw = record.flaw { return [refuse(record, flaw)] }
        guard record.totalSegments <= CommitRecord.maxSegmentsPerWrite else {
            return [refuse(record, "write \(record.opID) announces \(record.totalSegments) segments; at most \(CommitRecord.maxSegmentsPerWrite) are allowed")]
        }
        return settle(record)
    }

    private mutating func extend(_ partial: CommitRecord, with record: CommitRecord) -> [Action] {
        if let flaw = record.flaw { return [refuse(record, flaw)] }
        guard record.opID == partial.opID, record.totalSegments == partial.totalSegments, record.immediate == partial.immediate else {
            return [refuse(record, "the records of write \(partial.opID) disagree on its op id, segment count or immediate")]
        }
        var gathered = partial
        gathered.segments += record.segments
        gathered.continues = record.continues
        return settle(gathered)
    }

    /// Completes a write whose last record arrived, or keeps gathering.
    private mutating func settle(_ gathered: CommitRecord) -> [Action] {
        guard gathered.segments.count <= gathered.totalSegments else {
            return [refuse(gathered, "write \(gathered.opID) carries more segments than the \(gathered.totalSegments) it announced")]
        }
        if gathered.continues {
            state = .gathering(gathered)
            return []
        }
        guard gathered.segments.count == gathered.totalSegments else {
            return [refuse(gathered, "write \(gathered.opID) announced \(gathered.totalSegments) segments but its records hold \(gathered.segments.count)")]
        }
        state = .idle
        var request = Loom_Transfer_WriteRequest()
        request.opID = gathered.opID
        request.sender = sender
        request.senderEpoch = senderEpoch
        request.carriesImmediate = gathered.immediate != nil
        request.immediate = gathered.immediate ?? 0
        request.segments = gathered.segments
        return [.commit(ticket: gathered.ticket, request)]
    }

    /// Refuses `record`'s write and drops the rest of its chain.
    private mutating func refuse(_ record: CommitRecord, _ reason: String) -> Action {
        state = record.continues ? .skipping(ticket: record.ticket) : .idle
        return .refuse(ticket: record.ticket, opID: record.opID, TransferError(.invalidRequest, reason))
    }
}
