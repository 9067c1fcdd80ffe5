import LoomTransfer
import Testing

/// Write leases as plain data (a decode worker's reservations, a store's
/// put slots): leases end exactly once, by their deadline or by whoever
/// closes them first, and only writes onto a live lease's own pages are let in.
@Suite struct WriteLeasesTests {
    let start = ContinuousClock.now

    func lease(_ request: UInt64, offsets: Set<UInt64> = [0, 4096], until milliseconds: Int) -> WriteLeases<UInt64>.Lease {
        .init(holder: request, regionID: 1, epoch: 7, pageBytes: 4096, offsets: offsets, deadline: start + .milliseconds(milliseconds))
    }

    func write(_ immediate: UInt32, offset: UInt64, length: UInt64 = 4096, epoch: UInt64 = 7) -> Loom_Transfer_WriteRequest {
        var segment = Loom_Transfer_WriteSegment()
        segment.regionID = 1
        segment.epoch = epoch
        segment.offset = offset
        segment.length = length
        var request = Loom_Transfer_WriteRequest()
        request.immediate = immediate
        request.segments = [segment]
        return request
    }

    @Test func theSweepEndsOnlyLeasesPastTheirDeadlineAndEachOnce() {
        var table = WriteLeases<UInt64>()
        table.open(1, lease(10, until: 100))
        table.open(2, lease(20, until: 300))
        #expect(table.expire(now: start + .milliseconds(99)).isEmpty)
        #expect(table.expire(now: start + .milliseconds(100)).map(\.immediate) == [1])
        #expect(table.expire(now: start + .milliseconds(200)).isEmpty, "an expired lease is reported once")
        #expect(table.count == 1)
        #expect(table.close(1) == nil, "the sweep already ended it")
        #expect(table.close(2)?.holder == 20)
        #expect(table.expire(now: start + .seconds(10)).isEmpty, "a closed lease never expires")
    }

    @Test func onlyWritesOntoALiveLeasesBlocksAreAdmitted() throws {
        var table = WriteLeases<UInt64>()
        table.open(5, lease(50, until: 1000))
        try table.admit(write(5, offset: 4096))
        #expect(throws: TransferError.self) { try table.admit(write(5, offset: 8192)) }
        #expect(throws: TransferError.self) { try table.admit(write(5, offset: 0, length: 4097)) }
        // tcp cuts long writes into parts wherever its limit falls.
        try table.admit(write(5, offset: 4096 + 1000, length: 3096))
        #expect(throws: TransferError.self, "a part running past its page") { try table.admit(write(5, offset: 1000, length: 3097)) }
        #expect(throws: TransferError.self, "a part of a page not leased") { try table.admit(write(5, offset: 8192 + 100, length: 10)) }
        #expect(throws: TransferError.self) { try table.admit(write(5, offset: 0, epoch: 6)) }
        #expect(throws: TransferError.self) { try table.admit(write(6, offset: 0)) }
        _ = table.expire(now: start + .seconds(2))
        #expect(throws: TransferError.self, "a late write is refused, never applied") { try table.admit(write(5, offset: 0)) }
    }

    @Test func aPageIsWrittenWholeOnlyWhenLandedWritesCoverEveryByte() throws {
        var table = WriteLeases<UInt64>()
        table.open(5, lease(50, offsets: [0, 4096, 8192], until: 1000))
        // Page 0: two parts with a gap between them, one landed twice.
        table.landed(write(5, offset: 0, length: 1000))
        table.landed(write(5, offset: 0, length: 1000))
        table.landed(write(5, offset: 2000, length: 2096))
        // Page 1: two overlapping parts covering it.
        table.landed(write(5, offset: 4096, length: 2000))
        table.landed(write(5, offset: 4096 + 1500, length: 2596))
        // Page 2: written whole, but under another immediate.
        table.landed(write(6, offset: 8192))
        let closed = table.close(5)
        let lease = try #require(closed)
        #expect(!lease.isWrittenWhole(page: 0))
        #expect(lease.isWrittenWhole(page: 1))
        #expect(!lease.isWrittenWhole(page: 2))
    }
}
