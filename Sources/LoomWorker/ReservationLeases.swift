import LoomTransfer
import LoomWire
import Synchronization

/// The decode worker's live reservations, as the transfer target sees them:
/// a write is let into the KV pool only if it carries a live reservation's
/// immediate and lands exactly on that reservation's blocks. A late write
/// (the lease ran out, the blocks went to someone else) is refused, never
/// applied.
final class ReservationLeases: WriteAdmission {
    struct Lease {
        let regionID: UInt32
        let epoch: UInt64
        let blockBytes: UInt64
        /// Byte offsets of the blocks the prefill worker may write.
        let offsets: Set<UInt64>
    }

    private let leases = Mutex<[UInt32: Lease]>([:])

    func open(_ immediate: UInt32, _ lease: Lease) {
        leases.withLock { $0[immediate] = lease }
    }

    /// Ends a lease; returns it if it was still open. Exactly one caller
    /// wins: the attach that found its writes, or the timer that expired it.
    func close(_ immediate: UInt32) -> Lease? {
        leases.withLock { $0.removeValue(forKey: immediate) }
    }

    var count: Int { leases.withLock { $0.count } }

    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError) {
        let lease = leases.withLock { $0[request.immediate] }
        guard let lease else {
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
