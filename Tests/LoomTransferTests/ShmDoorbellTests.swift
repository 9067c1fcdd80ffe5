import LoomWire
import NIOConcurrencyHelpers
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import LoomTransfer

/// The `shm` doorbell: commit and acknowledgement rings in shared memory
/// with futex wake-ups. End to end through `ShmTransport` where the point is
/// the whole path, and with one end played by hand where a test must decide
/// what the other side publishes and when.
@Suite("shm doorbell")
struct ShmDoorbellTests {
    func writerConfiguration() -> RPCConfiguration {
        var configuration = RPCConfiguration(nodeName: "writer")
        configuration.keepaliveInterval = nil
        return configuration
    }

    @Test("more records than slots: both rings wrap, chains longer than the ring go out in parts, each write lands and counts once")
    func wrapAround() async throws {
        let source = RegionTable(owner: "writer", epoch: 1).register(length: 1 << 16)
        try source.fill(offset: 0, with: (0..<(1 << 16)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 8) })
        let geometry = try DoorbellGeometry(commitSlots: 4, ackSlots: 2)
        // Every third write is 100 pages: 7 records, more than the 4 slots.
        let pageCounts = (0..<48).map { $0 % 3 == 0 ? 100 : 1 }
        try await Backend.shm.withPeers(1) { peers in
            let peer = peers[0]
            try await ShmTransport.withTransport(to: peer.server.localAddress, configuration: writerConfiguration(),
                                                 ackTimeout: .seconds(30), geometry: geometry) { transport in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (i, count) in pageCounts.enumerated() {
                        let pages = (0..<count).map { i * 128 + $0 }
                        group.addTask {
                            try await transport.write(.paged(from: source, pages: pages, stride: 8, to: peer.region.descriptor,
                                                             pages: pages, stride: 8, pageLength: 8, immediate: 11))
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(peer.target.counters.count(11) == pageCounts.count)
            for (i, count) in pageCounts.enumerated() {
                #expect(try peer.region.read(offset: i * 1024, count: count * 8) == source.read(offset: i * 1024, count: count * 8))
            }
        }
    }

    @Test("acknowledgements in another order than the writes complete each write by its own ticket")
    func acknowledgementsOutOfOrder() async throws {
        let mapping = try DoorbellMapping.create(geometry: try DoorbellGeometry(commitSlots: 8, ackSlots: 8))
        var target = HandDrivenEnd(mapping: try DoorbellMapping.open(path: mapping.path))
        let writer = DoorbellWriter(mapping: mapping, ackTimeout: .seconds(30))
        let completions = Completions()
        let refusal = TransferError(.refused, "the lease on block 4 expired; reserve again")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for opID: UInt64 in [101, 102, 103] {
                group.addTask {
                    do {
                        try await writer.commit(opID: opID, immediate: nil, segments: [])
                        await completions.record(opID, nil)
                    } catch {
                        await completions.record(opID, error)
                    }
                }
            }
            let tickets = Dictionary(uniqueKeysWithValues: try await target.takeCommits(3).map { ($0.opID, $0.ticket) })
            target.post([AckRecord(ticket: tickets[103]!, opID: 103, outcome: .applied(duplicate: false))])
            try await completions.wait(for: 1)
            try await Task.sleep(for: .milliseconds(20))
            #expect(await completions.order == [103], "only the acknowledged write may complete")
            target.post([
                AckRecord(ticket: tickets[101]!, opID: 101, outcome: .refused(refusal)),
                AckRecord(ticket: tickets[102]!, opID: 102, outcome: .applied(duplicate: true)),
            ])
            try await group.waitForAll()
        }
        #expect(await completions.order.sorted() == [101, 102, 103])
        #expect(await completions.errors == [101: refusal])
        await writer.close()
    }

    @Test("a refused write's error code and message cross the ring, and the doorbell keeps serving")
    func refusalCrossesTheRing() async throws {
        let refusal = TransferError(.refused, "reservation 13 expired at step 4; ask the decode worker for a new one")
        let source = RegionTable(owner: "writer", epoch: 1).register(length: 64)
        let peer = try await Backend.shm.startPeer(name: "refuser", admission: RefuseImmediate(immediate: 13, error: refusal))
        try await ShmTransport.withTransport(to: peer.server.localAddress, configuration: writerConfiguration()) { transport in
            do {
                try await transport.write(.single(from: source, offset: 0, count: 8, to: peer.region.descriptor, offset: 0, immediate: 13))
                Issue.record("a refused write succeeded")
            } catch let error as TransferError {
                #expect(error == refusal)
            }
            try await transport.write(.single(from: source, offset: 0, count: 8, to: peer.region.descriptor, offset: 8, immediate: 14))
        }
        await peer.kill()
        #expect(peer.target.counters.count(13) == 0)
        #expect(peer.target.counters.count(14) == 1)
    }

    @Test("a refusal message too long for its slot is cut before a character, not inside one")
    func longRefusalMessage() {
        let slot = UnsafeMutableRawPointer.allocate(byteCount: DoorbellGeometry.ackSlotBytes, alignment: 64)
        defer { slot.deallocate() }
        let message = String(repeating: "é", count: 200)  // 400 bytes of UTF-8
        AckRecord(ticket: 1, opID: 2, outcome: .refused(TransferError(.outOfRegion, message))).encode(into: slot)
        guard case .refused(let error) = AckRecord.decode(from: slot).outcome else {
            Issue.record("a refusal came back as applied")
            return
        }
        #expect(error.code == .outOfRegion)
        #expect(error.message == String(repeating: "é", count: AckRecord.messageBytes / 2))
    }

    @Test("a write nobody acknowledges fails with ackLost once ackTimeout passes")
    func unansweredWrite() async throws {
        let mapping = try DoorbellMapping.create(geometry: .standard)
        let silent = try DoorbellMapping.open(path: mapping.path)
        let writer = DoorbellWriter(mapping: mapping, ackTimeout: .milliseconds(300))
        let start = ContinuousClock.now
        await expectTransferError([.ackLost]) {
            try await writer.commit(opID: 1, immediate: 5, segments: [])
        }
        // Not before the timeout; and the upper bound is loose because the
        // tests run at low priority on a busy machine.
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(300) && waited < .seconds(30))
        await writer.close()
        #expect(silent.isRaised(.writerClosed), "the target is told the writer is gone")
    }

    @Test("a write due before the idle writer thread would look again wakes it, and fails when due")
    func dueBeforeTheThreadWakes() async throws {
        let mapping = try DoorbellMapping.create(geometry: .standard)
        let silent = try DoorbellMapping.open(path: mapping.path)
        let writer = DoorbellWriter(mapping: mapping, ackTimeout: .milliseconds(200), idleWait: .seconds(20))
        try await eventually("the writer's thread sleeps, with nothing to wait for") { writer.threadWakesAt != nil }
        let start = ContinuousClock.now
        await expectTransferError([.ackLost]) {
            try await writer.commit(opID: 1, immediate: 5, segments: [])
        }
        // Unrung, the thread would notice only after its 20 s idle wait.
        #expect(ContinuousClock.now - start < .seconds(10))
        await writer.close()
        #expect(silent.isRaised(.writerClosed))
    }

    @Test("a target that stops while a write waits fails it at once, and later writes too")
    func targetStopsWhileWriteWaits() async throws {
        let mapping = try DoorbellMapping.create(geometry: .standard)
        var target = HandDrivenEnd(mapping: try DoorbellMapping.open(path: mapping.path))
        let writer = DoorbellWriter(mapping: mapping, ackTimeout: .seconds(120))
        let waiting = Task { try await writer.commit(opID: 1, immediate: 5, segments: []) }
        _ = try await target.takeCommits(1)
        let start = ContinuousClock.now
        target.mapping.raise(.targetClosed)
        target.mapping.writerBell.ring()
        await expectTransferError([.ackLost]) { try await waiting.value }
        #expect(ContinuousClock.now - start < .seconds(30), "failed by the closed flag, not by ackTimeout")
        await expectTransferError([.peerUnavailable]) {
            try await writer.commit(opID: 2, immediate: 5, segments: [])
        }
        await writer.close()
    }

    @Test("a peer killed while its doorbell thread is stuck in a write fails the writer through the socket, not the timeout")
    func peerDiesWhileWriteWaits() async throws {
        let gate = Gate()
        let source = RegionTable(owner: "writer", epoch: 1).register(length: 64)
        let peer = try await Backend.shm.startPeer(name: "stuck", admission: gate)
        try await ShmTransport.withTransport(to: peer.server.localAddress, configuration: writerConfiguration(), ackTimeout: .seconds(120)) { transport in
            let waiting = Task {
                try await transport.write(.single(from: source, offset: 0, count: 8, to: peer.region.descriptor, offset: 0, immediate: 15))
            }
            try await gate.waitUntilEntered()
            let start = ContinuousClock.now
            // kill() returns only once the doorbell thread is out of the gate.
            let killing = Task { await peer.kill() }
            await expectTransferError([.ackLost]) { try await waiting.value }
            #expect(ContinuousClock.now - start < .seconds(30), "failed by the socket closing, not by ackTimeout")
            gate.open()
            await killing.value
            await expectTransferError([.peerUnavailable, .ackLost]) {
                try await transport.write(.immediateOnly(15))
            }
        }
    }

    @Test("a malformed commit record is refused with a clear error and counts nothing; impossible indices close the doorbell")
    func malformedRecords() async throws {
        let (target, region) = try sharedTarget()
        let writerSide = try DoorbellMapping.create(geometry: try DoorbellGeometry(commitSlots: 4, ackSlots: 4))
        let doorbell = DoorbellTarget(mapping: try DoorbellMapping.open(path: writerSide.path), target: target, sender: "w", senderEpoch: 1)
        var writer = HandDrivenEnd(mapping: writerSide)
        let one = [segment(of: region, offset: 0, length: 8)]
        writer.publishCommit { slot in
            CommitRecord.records(ticket: 1, opID: 1, immediate: 21, segments: one)[0].encode(into: slot)
            slot.storeBytes(of: UInt32(99), toByteOffset: 28, as: UInt32.self)  // segments in this record
        }
        let refused = try await writer.takeAck()
        #expect(refused.ticket == 1)
        guard case .refused(let error) = refused.outcome else {
            Issue.record("a record claiming 99 segments was applied")
            return
        }
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("claims 99 segments; a record holds at most \(CommitRecord.segmentsPerRecord)"))

        writer.publishCommit { CommitRecord.records(ticket: 2, opID: 2, immediate: 21, segments: one)[0].encode(into: $0) }
        #expect(try await writer.takeAck().outcome == .applied(duplicate: false))
        #expect(target.counters.count(21) == 1)

        writerSide.commits.publish(head: writer.commitHead + 100)
        writerSide.targetBell.ring()
        let failure = await doorbell.join()
        #expect(failure?.code == .invalidRequest)
        #expect(writerSide.isRaised(.targetClosed))
    }

    @Test("the target opens only doorbell files: a path elsewhere, a symlink or a bad header is refused")
    func doorbellPaths() throws {
        #expect(throws: TransferError.self) { try DoorbellMapping.open(path: "/etc/hostname") }
        #expect(throws: TransferError.self) { try DoorbellMapping.open(path: "/dev/shm/\(DoorbellMapping.namePrefix).x/../../etc/hostname") }
        let link = "/dev/shm/\(DoorbellMapping.namePrefix).pid\(getpid())-link\(UInt32.random(in: 0...UInt32.max))"
        let real = try DoorbellMapping.create(geometry: .standard)
        defer { real.unlinkIfPresent() }
        #expect(symlink(real.path, link) == 0)
        defer { unlink(link) }
        #expect(throws: TransferError.self) { try DoorbellMapping.open(path: link) }

        let garbage = "/dev/shm/\(DoorbellMapping.namePrefix).pid\(getpid())-garbage\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(garbage, O_RDWR | O_CREAT | O_EXCL, 0o600)
        defer { unlink(garbage) }
        #expect(fd >= 0)
        #expect(ftruncate(fd, off_t(DoorbellGeometry.standard.fileBytes)) == 0)
        close(fd)
        do {
            _ = try DoorbellMapping.open(path: garbage)
            Issue.record("a file without a doorbell header was mapped")
        } catch {
            #expect(error.message.contains("no doorbell header"))
        }
    }
}

/// Refuses writes with one immediate, as a decode worker refuses writes
/// into a reservation that expired.
struct RefuseImmediate: WriteAdmission {
    let immediate: UInt32
    let error: TransferError

    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        if request.immediate == immediate { throw error }
    }
}

/// Holds the target's doorbell thread inside `admit` until opened, the way
/// a target stuck or slow in its own code would (bounded, so a failing test
/// cannot hold the thread forever).
final class Gate: WriteAdmission {
    private let entered = NIOLockedValueBox(false)
    private let opened = ConditionLock(value: false)

    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        entered.withLockedValue { $0 = true }
        if opened.lock(whenValue: true, timeoutSeconds: 30) { opened.unlock() }
    }

    func open() {
        opened.lock()
        opened.unlock(withValue: true)
    }

    func waitUntilEntered() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !entered.withLockedValue({ $0 }) {
            guard ContinuousClock.now < deadline else { throw TransferError(.timedOut, "no write reached the gate") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
