import LoomWire
import Synchronization

/// Memory a process lets writers into for a while, as plain data: which
/// pages of which region a writer may fill under which immediate, and
/// until when. A decode worker leases its reserved KV blocks to a prefill
/// worker this way, and a store node the slots it reserved for a put.
/// Tested without threads; `LockedWriteLeases` shares one behind a lock.
public struct WriteLeases<Holder: Sendable>: Sendable {
    public struct Lease: Sendable {
        /// Whose lease it is, to the owner (a request, a put's blocks).
        public let holder: Holder
        public let regionID: UInt32
        public let epoch: UInt64
        public let pageBytes: UInt64
        /// Byte offsets of the pages the writer may fill.
        public let offsets: Set<UInt64>
        /// After this the pages go back to the owner and late writes are refused.
        public let deadline: ContinuousClock.Instant
        /// The byte ranges (within each page, by page offset) that writes
        /// under this lease landed, so the owner can tell a page written
        /// whole from one a writer left partly stale.
        private(set) var written: [UInt64: [Range<UInt64>]] = [:]

        public init(holder: Holder, regionID: UInt32, epoch: UInt64, pageBytes: UInt64, offsets: Set<UInt64>, deadline: ContinuousClock.Instant) {
            self.holder = holder
            self.regionID = regionID
            self.epoch = epoch
            self.pageBytes = pageBytes
            self.offsets = offsets
            self.deadline = deadline
        }

        /// Whether writes under this lease landed on every byte of page
        /// `page` (counted in pages of `pageBytes`): checked from the
        /// segments, without reading the bytes.
        public func isWrittenWhole(page: Int) -> Bool {
            var covered: UInt64 = 0
            for range in (written[UInt64(page) * pageBytes] ?? []).sorted(by: { $0.lowerBound < $1.lowerBound }) {
                guard range.lowerBound <= covered else { return false }
                covered = max(covered, range.upperBound)
            }
            return covered >= pageBytes
        }

        mutating func record(_ segment: Loom_Transfer_WriteSegment) {
            let page = segment.offset / pageBytes * pageBytes
            written[page, default: []].append(segment.offset - page ..< segment.offset - page + segment.length)
        }

        /// A lease on pages `pages` of `region`, `pageBytes` each.
        public init(holder: Holder, pages: some Sequence<Int>, of region: RegionDescriptor, pageBytes: Int, deadline: ContinuousClock.Instant) {
            self.init(holder: holder, regionID: region.regionID, epoch: region.epoch, pageBytes: UInt64(pageBytes),
                      offsets: Set(pages.map { UInt64($0 * pageBytes) }), deadline: deadline)
        }
    }

    private var leases: [UInt32: Lease] = [:]

    public init() {}

    public var count: Int { leases.count }

    public mutating func open(_ immediate: UInt32, _ lease: Lease) {
        leases[immediate] = lease
    }

    /// Ends a lease; returns it if it was still open. Exactly one caller
    /// wins: whoever found its writes, a release, or the sweep.
    public mutating func close(_ immediate: UInt32) -> Lease? {
        leases.removeValue(forKey: immediate)
    }

    /// Ends every lease whose deadline has passed, and returns them.
    public mutating func expire(now: ContinuousClock.Instant) -> [(immediate: UInt32, lease: Lease)] {
        let due = leases.filter { $0.value.deadline <= now }
        for immediate in due.keys { leases[immediate] = nil }
        return due.map { ($0.key, $0.value) }.sorted { $0.immediate < $1.immediate }
    }

    /// Notes where an admitted write landed, on its lease if still open.
    public mutating func landed(_ request: Loom_Transfer_WriteRequest) {
        guard leases[request.immediate] != nil else { return }
        for segment in request.segments { leases[request.immediate]!.record(segment) }
    }

    /// Whether `request`'s segments all land on a live lease's pages. A
    /// segment may be part of a page: tcp cuts a long write into parts
    /// wherever its size limit falls, mid-page included.
    public func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        guard let lease = leases[request.immediate] else {
            throw TransferError(.refused, "no live lease for immediate \(request.immediate): it expired or was released; ask the owner for a new one")
        }
        for segment in request.segments {
            let page = segment.offset / lease.pageBytes * lease.pageBytes
            guard segment.regionID == lease.regionID, segment.epoch == lease.epoch,
                  lease.offsets.contains(page), segment.offset + segment.length <= page + lease.pageBytes
            else {
                throw TransferError(.refused, "write of \(segment.length) bytes at offset \(segment.offset) of region \(segment.regionID) is outside lease \(request.immediate)'s pages")
            }
        }
    }
}

/// The leases as the transfer target sees them: a write is let into the
/// region only if it carries a live lease's immediate and lands exactly on
/// that lease's pages. A late write (the lease ran out, the pages went to
/// someone else) is refused, never applied.
public final class LockedWriteLeases<Holder: Sendable>: WriteAdmission {
    private let table = Mutex(WriteLeases<Holder>())

    public init() {}

    public func open(_ immediate: UInt32, _ lease: WriteLeases<Holder>.Lease) {
        table.withLock { $0.open(immediate, lease) }
    }

    public func close(_ immediate: UInt32) -> WriteLeases<Holder>.Lease? {
        table.withLock { $0.close(immediate) }
    }

    public func expire(now: ContinuousClock.Instant) -> [(immediate: UInt32, lease: WriteLeases<Holder>.Lease)] {
        table.withLock { $0.expire(now: now) }
    }

    public var count: Int { table.withLock { $0.count } }

    public func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        try table.withLock { table throws(TransferError) in try table.admit(request) }
    }

    public func landed(_ request: Loom_Transfer_WriteRequest) {
        table.withLock { $0.landed(request) }
    }
}
