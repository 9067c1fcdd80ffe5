import Foundation
import LoomWire
#if canImport(Glibc)
import Glibc
#endif

/// Long-lived transports to the peers this process writes into, one per
/// address and backend (`TransferBackend.choose` picks it). A transport
/// whose peer vanished is dropped, so the next write reconnects (the peer
/// may have restarted).
public struct TransferPeers: Sendable {
    private let tcp: KeptOpen<RPCAddress, TCPTransport>
    private let shm: KeptOpen<RPCAddress, ShmTransport>
    private let fabric: KeptOpen<RPCAddress, FabricTransport>?

    public init(configuration: RPCConfiguration, fabric endpoint: FabricEndpoint?) {
        tcp = KeptOpen { address, body in
            try await TCPTransport.withTransport(to: address, lanes: 2, configuration: configuration) { try await body($0) }
        }
        shm = KeptOpen { address, body in
            try await ShmTransport.withTransport(to: address, configuration: configuration) { try await body($0) }
        }
        fabric = endpoint.map { endpoint in
            KeptOpen { address, body in
                try await FabricTransport.withTransport(to: address, endpoint: endpoint, configuration: configuration) { try await body($0) }
            }
        }
    }

    public func withTransport<T: Sendable>(
        to address: RPCAddress, over backend: TransferBackend, _ body: (any TransferTransport) async throws -> T
    ) async throws -> T {
        switch backend {
        case .shm: return try await shm.withResource(address, isBroken: Self.isBroken) { try await body($0) }
        case .tcp: return try await tcp.withResource(address, isBroken: Self.isBroken) { try await body($0) }
        case .fabric:
            guard let fabric else {
                throw TransferError(.invalidRequest, "the peer at \(address) registered its region with libfabric, and this process has no fabric endpoint; give every worker the same fabric_provider in the cluster config")
            }
            return try await fabric.withResource(address, isBroken: Self.isBroken) { try await body($0) }
        case .verbs:
            throw TransferError(.invalidRequest, "the peer at \(address) asked for verbs writes, which only `loom-peer` sends; give the cluster a fabric_provider (verbs;ofi_rxm) instead")
        }
    }

    /// Writes `operation` into `region`, owned by the process at `address`
    /// on host `peerHost`, over the backend the region calls for.
    public func write(_ operation: WriteOperation, into region: RegionDescriptor, at address: RPCAddress, peerHost: String) async throws {
        try await withTransport(to: address, over: .choose(for: region, peerHost: peerHost)) { try await $0.write(operation) }
    }

    public func closeAll() {
        tcp.closeAll()
        shm.closeAll()
        fabric?.closeAll()
    }

    /// A refused or stale write says nothing about the connection; a lost
    /// ack or an unreachable peer does.
    static func isBroken(_ error: Error) -> Bool {
        guard let error = error as? TransferError else { return true }
        return [.peerUnavailable, .ackLost, .timedOut].contains(error.code)
    }
}

/// This host as the transfer layer sees it: the machine and its network
/// namespace. Two workers with the same identity can reach each other's
/// `/dev/shm`; workers in different namespaces stand for different hosts
/// (as in the multi-host tests) and use `tcp`.
public enum HostIdentity {
    public static let current: String = {
        let machine = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        let namespace = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")) ?? "net:[?]"
        return "\(machine)/\(namespace)"
    }()
}
