import LoomTransfer
import LoomWire

/// Long-lived `tcp` transports to the decode workers this prefill worker
/// writes into, one per address. A transport whose peer vanished is
/// dropped, so the next request reconnects (the peer may have restarted).
struct PeerTransports: Sendable {
    private let kept: KeptOpen<RPCAddress, TCPTransport>

    init(configuration: RPCConfiguration) {
        kept = KeptOpen { address, body in
            try await TCPTransport.withTransport(to: address, lanes: 2, configuration: configuration) { try await body($0) }
        }
    }

    func withTransport<T: Sendable>(to address: RPCAddress, _ body: (TCPTransport) async throws -> T) async throws -> T {
        try await kept.withResource(address, isBroken: Self.isBroken, body)
    }

    func closeAll() { kept.closeAll() }

    /// A refused or stale write says nothing about the connection; a lost
    /// ack or an unreachable peer does.
    static func isBroken(_ error: Error) -> Bool {
        guard let error = error as? TransferError else { return true }
        return [.peerUnavailable, .ackLost, .timedOut].contains(error.code)
    }
}
