import LoomWire
import Testing
@testable import LoomTransfer

/// One end of a doorbell played by the test itself, through the same
/// mapping a real peer would use, so a test decides what is published,
/// when, and in which order.
struct HandDrivenEnd {
    let mapping: DoorbellMapping
    var commitHead: UInt64 = 0
    var commitTail: UInt64 = 0
    var ackHead: UInt64 = 0
    var ackTail: UInt64 = 0

    /// As the target: waits for `count` commit records and takes them.
    mutating func takeCommits(_ count: Int, within limit: Duration = .seconds(10)) async throws -> [CommitRecord] {
        let deadline = ContinuousClock.now + limit
        while try mapping.commits.ready(tail: commitTail) < count {
            guard ContinuousClock.now < deadline else { throw TransferError(.timedOut, "fewer than \(count) commit records arrived") }
            try await Task.sleep(for: .milliseconds(1))
        }
        let records = (0..<count).map { i in CommitRecord.decode(from: mapping.commits.slot(commitTail + UInt64(i))) }
        commitTail += UInt64(count)
        mapping.commits.release(tail: commitTail)
        return records
    }

    /// As the target: posts acknowledgements and rings the writer.
    mutating func post(_ acks: [AckRecord]) {
        for ack in acks {
            ack.encode(into: mapping.acks.slot(ackHead))
            ackHead += 1
        }
        mapping.acks.publish(head: ackHead)
        mapping.writerBell.ring()
    }

    /// As the writer: publishes one slot's raw bytes (filled by `fill`) and
    /// rings the target.
    mutating func publishCommit(_ fill: (UnsafeMutableRawPointer) -> Void) {
        fill(mapping.commits.slot(commitHead))
        commitHead += 1
        mapping.commits.publish(head: commitHead)
        mapping.targetBell.ring()
    }

    /// As the writer: waits for the next acknowledgement and takes it.
    mutating func takeAck(within limit: Duration = .seconds(10)) async throws -> AckRecord {
        let deadline = ContinuousClock.now + limit
        while try mapping.acks.ready(tail: ackTail) == 0 {
            guard ContinuousClock.now < deadline else { throw TransferError(.timedOut, "no acknowledgement arrived") }
            try await Task.sleep(for: .milliseconds(1))
        }
        let ack = AckRecord.decode(from: mapping.acks.slot(ackTail))
        ackTail += 1
        mapping.acks.release(tail: ackTail)
        return ack
    }
}

/// A target whose region lives in /dev/shm, for doorbells driven by hand.
func sharedTarget(admission: (any WriteAdmission)? = nil) throws -> (TransferTarget, RegisteredRegion) {
    let target = TransferTarget(regions: RegionTable(owner: "bell-\(UInt32.random(in: 0...UInt32.max))", epoch: 1), admission: admission)
    return (target, try SharedMemoryRegion.register(in: target.regions, length: 1 << 16))
}

func segment(of region: RegisteredRegion, offset: Int, length: Int) -> Loom_Transfer_WriteSegment {
    var segment = Loom_Transfer_WriteSegment()
    segment.regionID = region.descriptor.regionID
    segment.epoch = region.descriptor.epoch
    segment.offset = UInt64(offset)
    segment.length = UInt64(length)
    return segment
}

/// Completion order of concurrent writes, for tests that care.
actor Completions {
    private(set) var order: [UInt64] = []
    private(set) var errors: [UInt64: TransferError] = [:]

    func record(_ opID: UInt64, _ error: Error?) {
        order.append(opID)
        if let error = error as? TransferError { errors[opID] = error }
    }

    func wait(for count: Int, within limit: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + limit
        while order.count < count {
            guard ContinuousClock.now < deadline else { throw TransferError(.timedOut, "only \(order.count) of \(count) writes completed") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
