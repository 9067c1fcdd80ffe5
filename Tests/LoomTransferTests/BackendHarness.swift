import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

/// The transfer backends the backend-independent suite runs against, each
/// on loopback. `fabric` uses libfabric's `tcp;ofi_rxm` provider: real
/// one-sided RMA writes, in user space. `fabricFenced` writes as on a
/// provider without write ordering (efa): each immediate follows its
/// writes' acknowledgements instead of riding on the last one.
/// `fabricShm` uses libfabric's `shm` provider, which never reports a
/// refused or lost write: only the ack timeout (short here) fails one.
/// `verbsFake` runs the `verbs` backend (endpoint, queue pairs, target,
/// transport) over fake devices that copy like RDMA WRITEs: no RDMA
/// hardware here, and the libibverbs device itself is never exercised.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case tcp, shm, fabric, fabricFenced, fabricShm, verbsFake

    static let fabricProvider = "tcp;ofi_rxm"

    /// The provider and node a `fabric` case opens.
    var fabricEndpoint: (provider: String, node: String?)? {
        switch self {
        case .fabric, .fabricFenced: (Self.fabricProvider, "127.0.0.1")
        case .fabricShm: ("shm", nil)
        default: nil
        }
    }
    static let fakeVerbsNetwork = FakeVerbsNetwork()

    var testDescription: String { rawValue }
}

/// A process-like peer owning a region, serving one backend through its
/// receiver, as a worker does.
struct BackendPeer: Sendable {
    let backend: Backend
    let target: TransferTarget
    let receiver: any TransferReceiver
    let region: RegisteredRegion
    let server: RPCServer
    let serving: Task<Void, Error>

    var fabric: FabricTarget? { receiver as? FabricTarget }
    var verbs: VerbsTarget? { receiver as? VerbsTarget }

    /// Vanishes the way a crashed process does: stops serving and, for
    /// `fabric` and `verbs`, closes the endpoint peers write into.
    func kill() async {
        serving.cancel()
        _ = try? await serving.value
        if backend == .fabricShm {
            // A dead process's shm region outlives it; see `freeze()`.
            fabric?.endpoint.freeze()
        } else {
            receiver.close()
        }
    }

    /// Frees what `kill()` left for the writers' sake; call once they are done.
    func release() {
        receiver.close()
    }

    /// Takes a region away while its descriptor is still out there.
    func deregister(_ region: RegisteredRegion) {
        receiver.deregister(region)
    }
}

extension Backend {
    func receiver(for target: TransferTarget) throws -> any TransferReceiver {
        switch self {
        case .tcp: TCPReceiver(target: target)
        case .shm: SharedMemoryReceiver(target: target)
        case .fabric, .fabricFenced, .fabricShm:
            try FabricTarget(endpoint: FabricEndpoint(provider: fabricEndpoint!.provider, node: fabricEndpoint!.node), target: target)
        case .verbsFake: VerbsTarget(endpoint: VerbsEndpoint(device: Self.fakeVerbsNetwork.device()), target: target)
        }
    }

    func startPeer(name: String = "peer", epoch: UInt64 = 1, length: Int = 1 << 16, admission: (any WriteAdmission)? = nil) async throws -> BackendPeer {
        let owner = "\(name)-\(UInt32.random(in: 0...UInt32.max))"
        let target = TransferTarget(regions: RegionTable(owner: owner, epoch: epoch), admission: admission)
        let receiver = try receiver(for: target)
        let region = try receiver.register(length: length)
        var services = RPCServices()
        receiver.serve(into: &services)
        var configuration = RPCConfiguration(nodeName: owner)
        configuration.keepaliveInterval = nil
        configuration.transferBackends = receiver.offers
        // shm writers reach the doorbell through a unix socket, as on one host.
        let address: RPCAddress = self == .shm ? .unix(path: "/tmp/loom-shm-\(UInt64.random(in: 0...UInt64.max)).sock") : .tcp(host: "127.0.0.1", port: 0)
        let server = try await RPCServer.bind(address, services: services, configuration: configuration)
        return BackendPeer(backend: self, target: target, receiver: receiver, region: region, server: server,
                           serving: Task { try await server.run() })
    }

    func withPeers<R: Sendable>(_ count: Int, length: Int = 1 << 16, _ body: ([BackendPeer]) async throws -> R) async throws -> R {
        var peers: [BackendPeer] = []
        for i in 0..<count { peers.append(try await startPeer(name: "peer-\(i)", length: length)) }
        do {
            let result = try await body(peers)
            for peer in peers { await peer.kill(); peer.release() }
            return result
        } catch {
            for peer in peers { await peer.kill(); peer.release() }
            throw error
        }
    }

    /// A transport from a fresh writer to `peer`.
    func withTransport<R: Sendable>(to peer: BackendPeer, ackTimeout: Duration = .seconds(10), _ body: (any TransferTransport) async throws -> R) async throws -> R {
        var configuration = RPCConfiguration(nodeName: "writer")
        configuration.keepaliveInterval = nil
        let address = peer.server.localAddress
        switch self {
        case .tcp:
            return try await TCPTransport.withTransport(to: address, lanes: 2, configuration: configuration, ackTimeout: ackTimeout) { try await body($0) }
        case .shm:
            return try await ShmTransport.withTransport(to: address, configuration: configuration, ackTimeout: ackTimeout) { try await body($0) }
        case .fabric, .fabricFenced, .fabricShm:
            let endpoint = try FabricEndpoint(provider: fabricEndpoint!.provider, node: fabricEndpoint!.node, useWriteOrdering: self != .fabricFenced)
            defer { endpoint.close() }
            let timeout = self == .fabricShm ? min(ackTimeout, .seconds(2)) : ackTimeout
            return try await FabricTransport.withTransport(to: address, endpoint: endpoint, configuration: configuration, ackTimeout: timeout) { try await body($0) }
        case .verbsFake:
            // No ack timeout: RC's own retries (or here, the fake) fail a
            // write to a peer that is gone.
            let endpoint = VerbsEndpoint(device: Self.fakeVerbsNetwork.device())
            defer { endpoint.close() }
            return try await VerbsTransport.withTransport(to: address, endpoint: endpoint, configuration: configuration) { try await body($0) }
        }
    }
}

/// Runs `body`, which must fail with a `TransferError` whose code is one of `codes`.
func expectTransferError(_ codes: Set<TransferError.Code>, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected one of \(codes), but it succeeded")
    } catch let error as TransferError {
        #expect(codes.contains(error.code), "\(error)")
    } catch {
        Issue.record("expected one of \(codes), got \(error)")
    }
}

/// A writer's 4 KiB source region, every byte `byte`.
func writerSource(filledWith byte: UInt8) -> RegisteredRegion {
    let region = RegionTable(owner: "writer", epoch: 1).register(length: 4096)
    try! region.fill(offset: 0, with: [UInt8](repeating: byte, count: 4096))
    return region
}
