import LoomTransfer
import NIOConcurrencyHelpers

/// Wraps a transport and misbehaves on purpose, one scripted fault per write
/// (writes past the script pass through). For tests of this and later layers.
public final class FaultInjectingTransport: TransferTransport {
    public enum Fault: Sendable {
        case pass
        /// The write never reaches the peer; the caller sees `ackLost`.
        case drop
        /// The write lands but its acknowledgement is lost: `ackLost`.
        case dropAck
        case delay(Duration)
        /// The write is delivered twice.
        case duplicate
        /// The write is held back and delivered after the next one.
        case reorder
        /// The peer is killed (by the given action) before this write.
        case killPeer
    }

    let inner: any TransferTransport
    let killPeer: @Sendable () async -> Void
    private let script: NIOLockedValueBox<[Fault]>
    private let held = NIOLockedValueBox<[WriteOperation]>([])

    public init(wrapping inner: any TransferTransport, faults: [Fault], killPeer: @escaping @Sendable () async -> Void = {}) {
        self.inner = inner
        self.script = NIOLockedValueBox(faults)
        self.killPeer = killPeer
    }

    public func write(_ operation: WriteOperation) async throws {
        let fault = script.withLockedValue { $0.isEmpty ? .pass : $0.removeFirst() }
        switch fault {
        case .pass:
            try await inner.write(operation)
        case .drop:
            throw TransferError(.ackLost, "fault injected: write dropped before the peer")
        case .dropAck:
            try await inner.write(operation)
            throw TransferError(.ackLost, "fault injected: acknowledgement dropped")
        case .delay(let duration):
            try await Task.sleep(for: duration)
            try await inner.write(operation)
        case .duplicate:
            try await inner.write(operation)
            try await inner.write(operation)
        case .reorder:
            held.withLockedValue { $0.append(operation) }
            return
        case .killPeer:
            await killPeer()
            try await inner.write(operation)
        }
        for late in held.withLockedValue({ held in defer { held = [] }; return held }) {
            try await inner.write(late)
        }
    }
}
