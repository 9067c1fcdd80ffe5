import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

@Suite("Transfer regions, descriptors and counters")
struct RegionTests {
    func write(_ target: TransferTarget, region: RegionDescriptor, offset: Int, bytes: [UInt8], immediate: UInt32? = nil, opID: UInt64 = 1) throws(TransferError) -> Loom_Transfer_WriteAck {
        let request = Loom_Transfer_WriteRequest.single(into: region, at: offset, count: bytes.count, immediate: immediate, opID: opID, sender: "peer")
        return try target.apply(request, payload: ByteBuffer(bytes: bytes))
    }

    @Test("a descriptor survives serialization with its epoch and keys")
    func descriptorRoundTrip() throws {
        let descriptor = RegionDescriptor(owner: "decode-0", regionID: 7, epoch: 42, length: 1 << 20, backendKeys: ["verbs": [1, 2, 3, 4]])
        #expect(try RegionDescriptor(serialized: try descriptor.serialized()) == descriptor)
    }

    @Test("writes land at their offset and count their immediate")
    func writeLands() throws {
        let target = TransferTarget(regions: RegionTable(owner: "d", epoch: 1))
        let region = target.regions.register(length: 64)
        _ = try write(target, region: region.descriptor, offset: 10, bytes: [1, 2, 3], immediate: 9)
        #expect(try region.read(offset: 9, count: 5) == [0, 1, 2, 3, 0])
        #expect(target.counters.count(9) == 1)
    }

    @Test("a write outside the region is refused and changes nothing", arguments: [(62, 3), (64, 1), (-1, 1), (0, 65)])
    func outOfRegion(offset: Int, count: Int) throws {
        let target = TransferTarget(regions: RegionTable(owner: "d", epoch: 1))
        let region = target.regions.register(length: 64)
        if offset >= 0 {  // a negative offset cannot even be put on the wire
            do {
                _ = try write(target, region: region.descriptor, offset: offset, bytes: [UInt8](repeating: 0xFF, count: count), immediate: 1)
                Issue.record("write at \(offset)+\(count) was accepted")
            } catch {
                #expect(error.code == .outOfRegion)
            }
        }
        #expect(try region.read(offset: 0, count: 64) == [UInt8](repeating: 0, count: 64))
        #expect(target.counters.count(1) == 0)
        // The sender refuses it before sending, too.
        let source = RegionTable(owner: "p", epoch: 1).register(length: 128)
        #expect(throws: TransferError.self) {
            try WriteOperation.single(from: source, offset: 0, count: count, to: region.descriptor, offset: offset)
        }
    }

    @Test("a descriptor from before a restart is refused")
    func staleEpoch() throws {
        let before = RegionTable(owner: "d", epoch: 1).register(length: 64).descriptor
        let target = TransferTarget(regions: RegionTable(owner: "d", epoch: 2))
        _ = target.regions.register(length: 64)  // same id, new epoch
        do {
            _ = try write(target, region: before, offset: 0, bytes: [1])
            Issue.record("stale descriptor accepted")
        } catch {
            #expect(error.code == .staleDescriptor)
        }
    }

    @Test("a duplicated delivery is applied and counted once")
    func duplicateOnce() throws {
        let target = TransferTarget(regions: RegionTable(owner: "d", epoch: 1))
        let region = target.regions.register(length: 8)
        #expect(try write(target, region: region.descriptor, offset: 0, bytes: [1], immediate: 5, opID: 3).duplicate == false)
        #expect(try write(target, region: region.descriptor, offset: 0, bytes: [1], immediate: 5, opID: 3).duplicate == true)
        #expect(target.counters.count(5) == 1)
    }

    @Test("paged writes map source pages to remote pages with both strides")
    func pagedLayout() throws {
        let source = RegionTable(owner: "p", epoch: 1).register(length: 4 * 16)
        for page in 0..<4 { try source.fill(offset: page * 16, with: [UInt8](repeating: UInt8(page + 1), count: 8)) }
        let remote = RegionDescriptor(owner: "d", regionID: 1, epoch: 1, length: 8 * 32)
        let operation = try WriteOperation.paged(from: source, pages: [2, 0], stride: 16, to: remote, pages: [5, 1], stride: 32, pageLength: 8, immediate: 4)
        #expect(operation.segments.map(\.offset) == [160, 32])
        #expect(operation.segments.map { Array($0.bytes.readableBytesView) } == [[UInt8](repeating: 3, count: 8), [UInt8](repeating: 1, count: 8)])
        #expect(throws: TransferError.self) {
            try WriteOperation.paged(from: source, pages: [0], stride: 16, to: remote, pages: [8], stride: 32, pageLength: 8)
        }
    }

    @Test("a counter waiter wakes at the expected count, whatever the order")
    func counterWait() async throws {
        let counters = ImmediateCounters()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await counters.wait(for: 7, count: 3, timeout: .seconds(30)) }
            for immediate: UInt32 in [7, 8, 7, 7] { counters.record(immediate) }
            try await group.waitForAll()
        }
        #expect(counters.count(7) == 3)
    }

    @Test("a counter waiter polls its backend for completions before it parks")
    func counterPolls() async throws {
        /// Delivers the immediate only when polled, as a manual-progress
        /// backend does; nothing else would ever record it.
        struct Poller: CompletionPoller {
            let counters: ImmediateCounters
            func poll(until done: () -> Bool) -> Bool {
                counters.record(11)
                return done()
            }
        }
        let counters = ImmediateCounters()
        counters.pollWhileWaiting(Poller(counters: counters))
        try await counters.wait(for: 11, count: 1, timeout: .seconds(5))
        #expect(counters.count(11) == 1)
    }

    @Test("a counter waiter times out with how many arrived")
    func counterTimeout() async throws {
        let counters = ImmediateCounters()
        counters.record(1)
        do {
            try await counters.wait(for: 1, count: 2, timeout: .milliseconds(20))
            Issue.record("wait returned with 1 of 2")
        } catch let error as TransferError {
            #expect(error.code == .timedOut)
            #expect(error.message.contains("1 of 2"))
        }
    }
}

extension Loom_Transfer_WriteRequest {
    /// A one-segment write as a sender puts it on the wire, for tests that
    /// speak to a target below the transports.
    static func single(into region: RegionDescriptor, at offset: Int, count: Int, immediate: UInt32?, opID: UInt64, sender: String) -> Self {
        var request = Self()
        request.opID = opID
        request.sender = sender
        var segment = Loom_Transfer_WriteSegment()
        segment.regionID = region.regionID
        segment.epoch = region.epoch
        segment.offset = UInt64(offset)
        segment.length = UInt64(count)
        request.segments = [segment]
        request.carriesImmediate = immediate != nil
        request.immediate = immediate ?? 0
        return request
    }
}
