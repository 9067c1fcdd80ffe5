import LoomWire
import NIOConcurrencyHelpers
import NIOCore

/// A policy the target's owner applies before any byte of a write lands,
/// beyond region bounds: a decode worker accepts writes only into the
/// blocks of a live reservation with that reservation's immediate.
public protocol WriteAdmission: Sendable {
    func admit(_ request: Loom_Transfer_WriteRequest) throws(TransferError)
    /// Called once per write whose bytes all landed (never for a duplicate).
    func landed(_ request: Loom_Transfer_WriteRequest)
}

extension WriteAdmission {
    public func landed(_ request: Loom_Transfer_WriteRequest) {}
}

/// The receiving side of one-sided writes: checks each segment against the
/// region table, copies it in, then counts the immediate. Backends hand it
/// what arrived; it does not care how.
public final class TransferTarget: Sendable {
    public let regions: RegionTable
    public let counters: ImmediateCounters
    let admission: (any WriteAdmission)?
    /// Op ids applied lately per sender incarnation, so a duplicated
    /// delivery is acknowledged again but never applied (or counted) twice.
    private let applied = NIOLockedValueBox(AppliedWrites())

    public init(regions: RegionTable, counters: ImmediateCounters = ImmediateCounters(), admission: (any WriteAdmission)? = nil) {
        self.regions = regions
        self.counters = counters
        self.admission = admission
    }

    /// Applies a write whose bytes arrived whole as `payload`, segment after
    /// segment. All segments are checked before any byte is copied, so a
    /// refused write changes nothing.
    public func apply(_ request: Loom_Transfer_WriteRequest, payload: ByteBuffer) throws(TransferError) -> Loom_Transfer_WriteAck {
        let prepared = try prepare(request, payloadLength: payload.readableBytes)
        if !prepared.duplicate {
            payload.withUnsafeReadableBytes { bytes in
                var at = 0
                for (region, offset, length) in prepared.targets {
                    region.store(offset: offset, bytes: UnsafeRawBufferPointer(rebasing: bytes[at..<at + length]))
                    at += length
                }
            }
        }
        return complete(prepared)
    }

    /// Checks a write before any of its `payloadLength` bytes land: the
    /// regions, epochs and bounds of its segments, then the admission
    /// policy. A write already applied comes back marked duplicate, to be
    /// acknowledged again without landing.
    func prepare(_ request: Loom_Transfer_WriteRequest, payloadLength: Int) throws(TransferError) -> PreparedWrite {
        let sender = SenderIncarnation(request)
        if applied.withLockedValue({ $0.contains(request.opID, from: sender) }) {
            return PreparedWrite(request: request, sender: sender, targets: [], duplicate: true)
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
        guard total == payloadLength else {
            throw TransferError(.invalidRequest, "write \(request.opID) names \(total) bytes but carries \(payloadLength)")
        }
        return PreparedWrite(request: request, sender: sender, targets: targets, duplicate: false)
    }

    /// Counts a prepared write whose bytes have all landed.
    func complete(_ prepared: PreparedWrite) -> Loom_Transfer_WriteAck {
        var ack = Loom_Transfer_WriteAck()
        ack.opID = prepared.request.opID
        guard !prepared.duplicate else {
            ack.duplicate = true
            return ack
        }
        return count(prepared.request, sender: prepared.sender, ack: ack)
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
        return count(request, sender: SenderIncarnation(request), ack: ack)
    }

    private func count(_ request: Loom_Transfer_WriteRequest, sender: SenderIncarnation, ack: Loom_Transfer_WriteAck) -> Loom_Transfer_WriteAck {
        var ack = ack
        let fresh = applied.withLockedValue { $0.insert(request.opID, from: sender) }
        // Before the count, so whoever the count wakes sees where it landed.
        if fresh { admission?.landed(request) }
        if fresh, request.carriesImmediate { counters.record(request.immediate) }
        ack.duplicate = !fresh
        return ack
    }
}

/// A write whose segments were checked, and where each segment's bytes go.
struct PreparedWrite: Sendable {
    let request: Loom_Transfer_WriteRequest
    let sender: SenderIncarnation
    /// Region, offset and length of each segment, in payload order.
    let targets: [(RegisteredRegion, Int, Int)]
    let duplicate: Bool
}

/// One process that writes: op ids are unique per (sender, epoch).
struct SenderIncarnation: Hashable, Sendable {
    var name: String
    var epoch: UInt64

    init(name: String, epoch: UInt64) {
        self.name = name
        self.epoch = epoch
    }

    init(_ request: Loom_Transfer_WriteRequest) {
        self.init(name: request.sender, epoch: request.senderEpoch)
    }
}

/// The op ids each sender incarnation had applied lately, bounded both
/// ways: a window of ids per sender, and the senders that wrote most
/// recently (a restarted writer is a new incarnation; the old one never
/// writes again, and is the one forgotten).
struct AppliedWrites: Sendable {
    static let senderLimit = 256

    private var bySender: [SenderIncarnation: (filter: DuplicateFilter<UInt64>, lastWrite: UInt64)] = [:]
    private var writes: UInt64 = 0

    var senderCount: Int { bySender.count }

    func contains(_ opID: UInt64, from sender: SenderIncarnation) -> Bool {
        bySender[sender]?.filter.contains(opID) ?? false
    }

    /// Records `opID`; false when it was applied already.
    mutating func insert(_ opID: UInt64, from sender: SenderIncarnation) -> Bool {
        writes += 1
        if bySender[sender] == nil, bySender.count >= Self.senderLimit,
           let idlest = bySender.min(by: { $0.value.lastWrite < $1.value.lastWrite })?.key {
            bySender[idlest] = nil
        }
        bySender[sender, default: (DuplicateFilter(), 0)].lastWrite = writes
        return bySender[sender]!.filter.insert(opID)
    }
}
