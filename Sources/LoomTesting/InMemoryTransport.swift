import LoomTransfer
import NIOCore

/// A transport straight into a `TransferTarget` of this process: the
/// target's checks, admission and counting, with no socket between. For
/// tests of what sits above the transfer layer; the backends' own suite
/// runs the real ones.
public struct InMemoryTransport: TransferTransport {
    public let target: TransferTarget
    public let sender: String
    public let epoch: UInt64

    public init(into target: TransferTarget, sender: String = "in-memory", epoch: UInt64 = 1) {
        self.target = target
        self.sender = sender
        self.epoch = epoch
    }

    public func write(_ operation: WriteOperation) async throws {
        var payload = ByteBuffer()
        for segment in operation.segments { payload.writeImmutableBuffer(segment.bytes) }
        _ = try target.apply(operation.request(sender: sender, epoch: epoch), payload: payload)
    }
}
