import LoomWire

/// One slot of the commit ring: a write the writer already copied into the
/// target's shared mapping, to be checked and counted. A write with more
/// segments than a slot holds is chained over consecutive records (same
/// ticket, `continues` set on all but the last) rather than sent another way,
/// so KV transfers of hundreds of pages stay on the doorbell too.
///
/// Layout (512 bytes, native byte order: both sides are on one host):
/// 0 op id u64 · 8 ticket u64 · 16 immediate u32 · 20 flags u32 (bit 0
/// carries an immediate, bit 1 continues) · 24 segments in the write u32 ·
/// 28 segments in this record u32 · 32 + 32·i segment i: region id u32,
/// 4 spare, epoch u64, offset u64, length u64.
struct CommitRecord: Equatable {
    static let segmentsPerRecord = 15
    /// The most segments one write may have: 64 GiB in 64 KiB pages. The
    /// target gathers a chain's segments before checking them, so this
    /// bounds what a writer can make it hold.
    static let maxSegmentsPerWrite = 1 << 20

    private static let carriesImmediate: UInt32 = 1
    private static let continuesFlag: UInt32 = 2

    /// The writer's handle for routing the acknowledgement back; unique per
    /// doorbell, unlike `opID`, which a duplicated write repeats.
    var ticket: UInt64
    var opID: UInt64
    var immediate: UInt32?
    /// More records of the same write follow this one.
    var continues = false
    var totalSegments: UInt32
    var segments: [Loom_Transfer_WriteSegment]
    /// Why a decoded record cannot be believed; its segments are then empty.
    var flaw: String?

    /// The records of one write: its segments in groups, and at least one
    /// record even without segments (an immediate-only write).
    static func records(ticket: UInt64, opID: UInt64, immediate: UInt32?, segments: [Loom_Transfer_WriteSegment]) -> [CommitRecord] {
        precondition(segments.count <= maxSegmentsPerWrite, "checked by the writer before copying")
        let groups = stride(from: 0, to: max(segments.count, 1), by: segmentsPerRecord).map { start in
            Array(segments[start..<min(start + segmentsPerRecord, segments.count)])
        }
        return groups.enumerated().map { index, group in
            CommitRecord(ticket: ticket, opID: opID, immediate: immediate, continues: index < groups.count - 1,
                         totalSegments: UInt32(segments.count), segments: group)
        }
    }

    func encode(into slot: UnsafeMutableRawPointer) {
        precondition(segments.count <= Self.segmentsPerRecord)
        slot.storeBytes(of: opID, toByteOffset: 0, as: UInt64.self)
        slot.storeBytes(of: ticket, toByteOffset: 8, as: UInt64.self)
        slot.storeBytes(of: immediate ?? 0, toByteOffset: 16, as: UInt32.self)
        let flags = (immediate == nil ? 0 : Self.carriesImmediate) | (continues ? Self.continuesFlag : 0)
        slot.storeBytes(of: flags, toByteOffset: 20, as: UInt32.self)
        slot.storeBytes(of: totalSegments, toByteOffset: 24, as: UInt32.self)
        slot.storeBytes(of: UInt32(segments.count), toByteOffset: 28, as: UInt32.self)
        for (i, segment) in segments.enumerated() {
            let at = 32 + 32 * i
            slot.storeBytes(of: segment.regionID, toByteOffset: at, as: UInt32.self)
            slot.storeBytes(of: segment.epoch, toByteOffset: at + 8, as: UInt64.self)
            slot.storeBytes(of: segment.offset, toByteOffset: at + 16, as: UInt64.self)
            slot.storeBytes(of: segment.length, toByteOffset: at + 24, as: UInt64.self)
        }
    }

    /// Reads a slot the writer filled. Each field is read once, so a writer
    /// changing the slot meanwhile gets a garbled record, never one that
    /// passed a check with one value and is used with another.
    static func decode(from slot: UnsafeRawPointer) -> CommitRecord {
        let flags = slot.load(fromByteOffset: 20, as: UInt32.self)
        let count = slot.load(fromByteOffset: 28, as: UInt32.self)
        var record = CommitRecord(
            ticket: slot.load(fromByteOffset: 8, as: UInt64.self), opID: slot.load(fromByteOffset: 0, as: UInt64.self),
            immediate: flags & carriesImmediate != 0 ? slot.load(fromByteOffset: 16, as: UInt32.self) : nil,
            continues: flags & continuesFlag != 0, totalSegments: slot.load(fromByteOffset: 24, as: UInt32.self), segments: [])
        guard flags & ~(carriesImmediate | continuesFlag) == 0 else {
            record.flaw = "commit record of write \(record.opID) has unknown flags \(String(flags, radix: 16))"
            return record
        }
        guard count <= segmentsPerRecord else {
            record.flaw = "commit record of write \(record.opID) claims \(count) segments; a record holds at most \(segmentsPerRecord)"
            return record
        }
        record.segments = (0..<Int(count)).map { i in
            var segment = Loom_Transfer_WriteSegment()
            let at = 32 + 32 * i
            segment.regionID = slot.load(fromByteOffset: at, as: UInt32.self)
            segment.epoch = slot.load(fromByteOffset: at + 8, as: UInt64.self)
            segment.offset = slot.load(fromByteOffset: at + 16, as: UInt64.self)
            segment.length = slot.load(fromByteOffset: at + 24, as: UInt64.self)
            return segment
        }
        return record
    }
}

/// One slot of the acknowledgement ring: how the target settled a write.
/// A refusal carries the same `TransferError` code and message the writer
/// would have got over RPC (the message cut to what fits).
///
/// Layout (256 bytes): 0 ticket u64 · 8 op id u64 · 16 status u32 (0
/// applied, else a `TransferError.Code`) · 20 flags u32 (bit 0 duplicate) ·
/// 24 message length u32 · 32 message, UTF-8.
struct AckRecord: Equatable {
    enum Outcome: Equatable {
        case applied(duplicate: Bool)
        case refused(TransferError)
    }

    static let messageBytes = DoorbellGeometry.ackSlotBytes - 32

    var ticket: UInt64
    var opID: UInt64
    var outcome: Outcome

    func encode(into slot: UnsafeMutableRawPointer) {
        slot.storeBytes(of: ticket, toByteOffset: 0, as: UInt64.self)
        slot.storeBytes(of: opID, toByteOffset: 8, as: UInt64.self)
        switch outcome {
        case .applied(let duplicate):
            slot.storeBytes(of: 0, toByteOffset: 16, as: UInt32.self)
            slot.storeBytes(of: duplicate ? 1 : 0, toByteOffset: 20, as: UInt32.self)
            slot.storeBytes(of: 0, toByteOffset: 24, as: UInt32.self)
        case .refused(let error):
            let message = Self.truncated(error.message)
            slot.storeBytes(of: error.code.rawValue, toByteOffset: 16, as: UInt32.self)
            slot.storeBytes(of: 0, toByteOffset: 20, as: UInt32.self)
            slot.storeBytes(of: UInt32(message.count), toByteOffset: 24, as: UInt32.self)
            UnsafeMutableRawBufferPointer(start: slot + 32, count: message.count).copyBytes(from: message)
        }
    }

    /// Reads a slot the target filled; a status or length it could not
    /// have written settles the write as `ackLost` rather than guessing.
    static func decode(from slot: UnsafeRawPointer) -> AckRecord {
        let ticket = slot.load(fromByteOffset: 0, as: UInt64.self)
        let opID = slot.load(fromByteOffset: 8, as: UInt64.self)
        let status = slot.load(fromByteOffset: 16, as: UInt32.self)
        let length = Int(slot.load(fromByteOffset: 24, as: UInt32.self))
        if status == 0 {
            return AckRecord(ticket: ticket, opID: opID, outcome: .applied(duplicate: slot.load(fromByteOffset: 20, as: UInt32.self) & 1 != 0))
        }
        guard let code = TransferError.Code(rawValue: status), length <= messageBytes else {
            let lost = TransferError(.ackLost, "the acknowledgement of write \(opID) is malformed (status \(status), message of \(length) bytes); the write may or may not have landed")
            return AckRecord(ticket: ticket, opID: opID, outcome: .refused(lost))
        }
        let message = String(decoding: UnsafeRawBufferPointer(start: slot + 32, count: length), as: UTF8.self)
        return AckRecord(ticket: ticket, opID: opID, outcome: .refused(TransferError(code, message)))
    }

    /// At most `messageBytes` of UTF-8, cut before a character, not inside one.
    private static func truncated(_ message: String) -> [UInt8] {
        var bytes = Array(message.utf8)
        guard bytes.count > messageBytes else { return bytes }
        var end = messageBytes
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        bytes.removeSubrange(end...)
        return bytes
    }
}
