import LoomWire
import NIOCore

/// Lets a `tcp` write's bytes land in their regions as the socket delivers
/// them, instead of gathering the whole write first and copying it again.
/// Everything `TransferTarget.apply` checks is checked before the first byte.
struct SegmentSink: AttachmentSink {
    let target: TransferTarget

    func receiver(for header: FrameHeader, message: ByteBuffer) throws(WireError) -> any AttachmentReceiver {
        let write: Loom_Transfer_WriteRequest = try RPCMessage(message: message).decode()
        do {
            return SegmentReceiver(try target.prepare(write, payloadLength: Int(header.attachmentLength)))
        } catch {
            throw WireError(error)
        }
    }
}

/// Copies an attachment across a prepared write's segments, in order. A
/// duplicate's bytes are dropped: the first delivery already landed them,
/// and the owner may be using that memory by now.
final class SegmentReceiver: AttachmentReceiver {
    let prepared: PreparedWrite
    private var segment = 0
    private var filled = 0

    init(_ prepared: PreparedWrite) {
        self.prepared = prepared
    }

    func receive(_ bytes: UnsafeRawBufferPointer) {
        guard !prepared.duplicate else { return }
        var rest = bytes[...]
        while !rest.isEmpty {
            let (region, offset, length) = prepared.targets[segment]
            let count = min(length - filled, rest.count)
            region.store(offset: offset + filled, bytes: UnsafeRawBufferPointer(rebasing: rest.prefix(count)))
            rest = rest.dropFirst(count)
            filled += count
            if filled == length {
                segment += 1
                filled = 0
            }
        }
    }

    func finish() -> any Sendable { prepared }
}
