import Foundation
import LoomTransfer
import LoomWire
#if canImport(Glibc)
import Glibc
#endif

/// Long-lived transports to the decode workers this prefill worker writes
/// into, one per address and backend: `fabric` when the decode worker
/// reserved its blocks over it, else `shm` when it shares this host, `tcp`
/// otherwise. A transport whose peer vanished is dropped, so the next
/// request reconnects (the peer may have restarted).
struct PeerTransports: Sendable {
    enum Backend: Sendable {
        case tcp, shm, fabric
    }

    private let tcp: KeptOpen<RPCAddress, TCPTransport>
    private let shm: KeptOpen<RPCAddress, ShmTransport>
    private let fabric: KeptOpen<RPCAddress, FabricTransport>?

    init(configuration: RPCConfiguration, fabric endpoint: FabricEndpoint?) {
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

    func withTransport<T: Sendable>(
        to address: RPCAddress, over backend: Backend, _ body: (any TransferTransport) async throws -> T
    ) async throws -> T {
        switch backend {
        case .shm: return try await shm.withResource(address, isBroken: Self.isBroken) { try await body($0) }
        case .tcp: return try await tcp.withResource(address, isBroken: Self.isBroken) { try await body($0) }
        case .fabric:
            guard let fabric else {
                throw TransferError(.invalidRequest, "the decode worker at \(address) reserved its KV blocks over fabric (libfabric), and this worker has no fabric endpoint; give every worker the same fabric_provider in the cluster config")
            }
            return try await fabric.withResource(address, isBroken: Self.isBroken) { try await body($0) }
        }
    }

    func closeAll() {
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
enum HostIdentity {
    static let current: String = {
        let machine = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        let namespace = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")) ?? "net:[?]"
        return "\(machine)/\(namespace)"
    }()
}

/// Shared KV pools live in files under /dev/shm named after their owner,
/// which carries its pid; a worker killed before it could unlink its file
/// leaves it behind, so each start removes those of dead processes.
enum StaleSharedPools {
    static func remove(directory: String = "/dev/shm") {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix("loom-") {
            // loom-<worker>.pid<PID>-<epoch>-<region>
            guard let range = name.range(of: #"\.pid\d+-"#, options: .regularExpression) else { continue }
            let digits = name[range].dropFirst(4).dropLast()
            guard let pid = Int32(digits), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink("\(directory)/\(name)")
        }
    }
}
