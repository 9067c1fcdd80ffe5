import LoomWire
import Testing
@testable import LoomTransfer

/// The target's reading of the commit ring, without threads or shared memory.
@Suite("shm doorbell: commit records into writes")
struct CommitAssemblerTests {
    func segments(_ count: Int) -> [Loom_Transfer_WriteSegment] {
        (0..<count).map { i in
            var segment = Loom_Transfer_WriteSegment()
            segment.regionID = 1
            segment.epoch = 1
            segment.offset = UInt64(i * 64)
            segment.length = 64
            return segment
        }
    }

    func refusal(_ actions: [CommitAssembler.Action]) -> (ticket: UInt64, TransferError)? {
        guard actions.count == 1, case .refuse(let ticket, _, let error) = actions[0] else { return nil }
        return (ticket, error)
    }

    @Test("a write chained over records is committed once, whole, as its sender")
    func chain() throws {
        var assembler = CommitAssembler(sender: "writer", senderEpoch: 7)
        let records = CommitRecord.records(ticket: 1, opID: 40, immediate: 9, segments: segments(40))
        #expect(records.count == 3)
        #expect(records.map(\.continues) == [true, true, false])
        #expect(assembler.accept(records[0]).isEmpty)
        #expect(assembler.accept(records[1]).isEmpty)
        let actions = assembler.accept(records[2])
        guard actions.count == 1, case .commit(let ticket, let request) = actions[0] else {
            Issue.record("expected one commit, got \(actions)")
            return
        }
        #expect(ticket == 1)
        #expect(request.opID == 40 && request.sender == "writer" && request.senderEpoch == 7)
        #expect(request.carriesImmediate && request.immediate == 9)
        #expect(request.segments == segments(40))
    }

    @Test("an immediate-only write is one record with no segments")
    func immediateOnly() {
        var assembler = CommitAssembler(sender: "w", senderEpoch: 1)
        let records = CommitRecord.records(ticket: 5, opID: 2, immediate: 3, segments: [])
        #expect(records.count == 1)
        guard case .commit(_, let request)? = assembler.accept(records[0]).first else {
            Issue.record("not committed")
            return
        }
        #expect(request.segments.isEmpty && request.immediate == 3)
    }

    @Test("a chain cut short by another write is refused, and the other write still goes through")
    func brokenChain() {
        var assembler = CommitAssembler(sender: "w", senderEpoch: 1)
        let long = CommitRecord.records(ticket: 1, opID: 10, immediate: nil, segments: segments(20))
        let short = CommitRecord.records(ticket: 2, opID: 11, immediate: nil, segments: segments(1))
        #expect(assembler.accept(long[0]).isEmpty)
        let actions = assembler.accept(short[0])
        #expect(actions.count == 2)
        guard case .refuse(1, 10, let error) = actions[0], case .commit(2, _) = actions[1] else {
            Issue.record("expected the cut chain refused, then the next write, got \(actions)")
            return
        }
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("stopped after 15 of its 20 segments"))
    }

    @Test("records that contradict their own count are refused, and the rest of that chain is dropped")
    func contradictions() {
        var assembler = CommitAssembler(sender: "w", senderEpoch: 1)
        var lying = CommitRecord.records(ticket: 1, opID: 1, immediate: nil, segments: segments(3))[0]
        lying.totalSegments = 4
        #expect(refusal(assembler.accept(lying))?.1.message.contains("announced 4 segments but its records hold 3") == true)

        var chain = CommitRecord.records(ticket: 2, opID: 2, immediate: nil, segments: segments(40))
        chain[1].opID = 99
        #expect(assembler.accept(chain[0]).isEmpty)
        #expect(refusal(assembler.accept(chain[1]))?.ticket == 2)
        // The last record of the refused chain is dropped, not read as a new write.
        #expect(assembler.accept(chain[2]).isEmpty)
        let next = CommitRecord.records(ticket: 3, opID: 3, immediate: nil, segments: segments(1))
        guard case .commit(3, _)? = assembler.accept(next[0]).first else {
            Issue.record("the assembler did not recover after a refused chain")
            return
        }
    }

    @Test("a write announcing more segments than allowed is refused before any is gathered")
    func tooManySegments() {
        var assembler = CommitAssembler(sender: "w", senderEpoch: 1)
        var record = CommitRecord.records(ticket: 1, opID: 1, immediate: nil, segments: segments(15))[0]
        record.continues = true
        record.totalSegments = UInt32(CommitRecord.maxSegmentsPerWrite + 1)
        let refused = refusal(assembler.accept(record))
        #expect(refused?.1.code == .invalidRequest)
        #expect(refused?.1.message.contains("at most \(CommitRecord.maxSegmentsPerWrite)") == true)
    }
}
