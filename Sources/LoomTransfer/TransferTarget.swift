import LoomWire
import NIOConcurrencyHelpers
import NIOCore

/// A policy the target's owner applies before any byte of a write lands,
/// beyond region bounds: a decode worker accepts writes only into the
/// blocks of a live reservation with that reservation's immediate.
public protocol WriteAdmission: Sendable {
    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError)
}

/// The receiving side of one-sided writes: checks each segment against the
/// region table, copies it in, then counts the immediate. Backends hand it
/// what arrived; it does not care how.
public final class TransferTarget: Sendable {
    public let regions: RegionTable
    public let counters: ImmediateCounters
    let admission: (any WriteAdmission)?
    /// Op ids applied per sender incarnation, so a duplicated delivery is
    /// acknowledged again but never applied (or counted) twice.
    private let applied = NIOLockedValueBox([String: Set<UInt64>]())

    public init(regions: RegionTable, counters: ImmediateCounters = ImmediateCounters(), admission: (any WriteAdmission)? = nil) {
        self.regions = regions
        self.counters = counters
        self.admission = admission
    }

    /// Applies a write whose bytes are `payload`, segment after segment.
    /// All segments are checked before any byte is copied, so a refused
    /// write changes nothing.
    public func apply(_ request: Loom_Transfer_WriteRequest, payload: ByteBuffer) throws(TransferError) -> Loom_Transfer_WriteAck {
        var ack = Loom_Transfer_WriteAck()
        ack.opID = request.opID
        let sender = "\(request.sender)#\(request.senderEpoch)"
        if applied.withLockedValue({ $0[sender]?.contains(request.opID) ?? false }) {
            ack.duplicate = true
            return ack
        }
        var targets: [(RegisteredRegion, Int, Int)] = []
        var total = 0
        for segment in request.segments {
            let region = try regions.resolve(regionID: segment.regionID, epoch: segment.epoch,
                                             offset: Int(clamping: segment.offset), count: Int(clamping: segment.length))
            targets.append((region, Int(segment.offset), Int(segment.length)))
            total += Int(segment.length)
        }
        // After the region checks, so a write from before a restart is
        // reported as stale rather than as outside a reservation.
        try admission?.admit(request)
        guard total == payload.readableBytes else {
            throw TransferError(.invalidRequest, "write \(request.opID) names \(total) bytes but carries \(payload.readableBytes)")
        }
        var cursor = payload.readerIndex
        for (region, offset, length) in targets {
            payload.withUnsafeReadableBytes { bytes in
                let start = cursor - payload.readerIndex
                region.store(offset: offset, bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<start + length]))
            }
            cursor += length
        }
        return count(request, sender: sender, ack: ack)
    }

    /// For writes whose bytes the sender already copied into a shared
    /// mapping (`shm`): checks the segments it claims and counts the
    /// immediate, once per op id.
    public func commitShared(_ request: Loom_Transfer_WriteRequest) throws(TransferError) -> Loom_Transfer_WriteAck {
        for segment in request.segments {
            _ = try regions.resolve(regionID: segment.regionID, epoch: segment.epoch,
                                    offset: Int(clamping: segment.offset), count: Int(clamping: segment.length))
        }
        try admission?.admit(request)
        var ack = Loom_Transfer_WriteAck()
        ack.opID = request.opID
        return count(request, sender: "\(request.sender)#\(request.senderEpoch)", ack: ack)
    }

    private func count(_ request: Loom_Transfer_WriteRequest, sender: String, ack: Loom_Transfer_WriteAck) -> Loom_Transfer_WriteAck {
        var ack = ack
        let fresh = applied.withLockedValue { $0[sender, default: []].insert(request.opID).inserted }
        if fresh, request.carriesImmediate { counters.record(request.immediate) }
        ack.duplicate = !fresh
        return ack
    }
}
