import LoomEngine
import LoomTransfer
import LoomWire
import Synchronization

/// A decode worker's live reservations as plain data: which blocks a
/// prefill worker may write for which immediate, and until when. Tested
/// without threads; `ReservationLeases` shares one behind a lock.
struct ReservationTable: Sendable {
    struct Lease: Sendable {
        let request: RequestID
        let regionID: UInt32
        let epoch: UInt64
        let blockBytes: UInt64
        /// Byte offsets of the blocks the prefill worker may write.
        let offsets: Set<UInt64>
        /// After this the blocks go back to the pool and late writes are refused.
        let deadline: ContinuousClock.Instant
    }

    private var leases: [UInt32: Lease] = [:]

    var count: Int { leases.count }

    mutating func open(_ immediate: UInt32, _ lease: Lease) {
        leases[immediate] = lease
    }

    /// Ends a lease; returns it if it was still open. Exactly one caller
    /// wins: the attach that found its writes, a release, or the sweep.
    mutating func close(_ immediate: UInt32) -> Lease? {
        leases.removeValue(forKey: immediate)
    }

    /// Ends every lease whose deadline has passed, and returns them.
    mutating func expire(now: ContinuousClock.Instant) -> [(immediate: UInt32, lease: Lease)] {
        let due = leases.filter { $0.value.deadline <= now }
        for immediate in due.keys { leases[immediate] = nil }
        return due.map { ($0.key, $0.value) }.sorted { $0.immediate < $1.immediate }
    }

    /// Whether `request`'s segments all land on a live lease's blocks.
    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        guard let lease = leases[request.immediate] else {
            throw TransferError(.refused, "no live reservation for immediate \(request.immediate): it expired or was released; ask the decode worker for a new one")
        }
        for segment in request.segments {
            guard segment.regionID == lease.regionID, segment.epoch == lease.epoch,
                  lease.offsets.contains(segment.offset), segment.length <= lease.blockBytes
            else {
                throw TransferError(.refused, "write of \(segment.length) bytes at offset \(segment.offset) of region \(segment.regionID) is outside reservation \(request.immediate)'s blocks")
            }
        }
    }
}

/// The reservation table as the transfer target sees it: a write is let
/// into the KV pool only if it carries a live reservation's immediate and
/// lands exactly on that reservation's blocks. A late write (the lease ran
/// out, the blocks went to someone else) is refused, never applied.
final class ReservationLeases: WriteAdmission {
    private let table = Mutex(ReservationTable())

    func open(_ immediate: UInt32, _ lease: ReservationTable.Lease) {
        table.withLock { $0.open(immediate, lease) }
    }

    func close(_ immediate: UInt32) -> ReservationTable.Lease? {
        table.withLock { $0.close(immediate) }
    }

    func expire(now: ContinuousClock.Instant) -> [(immediate: UInt32, lease: ReservationTable.Lease)] {
        table.withLock { $0.expire(now: now) }
    }

    var count: Int { table.withLock { $0.count } }

    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        try table.withLock { table throws(TransferError) in try table.admit(request) }
    }
}
