import LoomWire
import Synchronization

/// The `verbs` backend: RDMA WRITEs on an RC queue pair into a peer's
/// registered memory, the immediate carried by the last one (WRITE WITH
/// IMM). The peer's HELLO says it serves `verbs` and on which port; a
/// connect call then exchanges the two queue pairs' numbers and PSNs, and
/// again for a fresh pair after one failed (`VerbsLink`).
///
/// Built against libibverbs and tested only against a fake device: it has
/// never run on RDMA hardware.
public final class VerbsTransport: TransferTransport {
    let endpoint: VerbsEndpoint
    let link: VerbsLink
    private let delivered = Mutex(DuplicateFilter<UInt64>())

    /// How long a target may take to answer the call that sets up a queue pair.
    public static let defaultSetupTimeout: Duration = .seconds(10)

    init(endpoint: VerbsEndpoint, link: VerbsLink) {
        self.endpoint = endpoint
        self.link = link
    }

    /// Connects to a peer serving `VerbsTarget` at `address`, runs `body`
    /// with a transport that writes through `endpoint`, then tears the
    /// queue pairs down on both sides. Setting up a pair fails after
    /// `setupTimeout` when the target does not answer.
    public static func withTransport<Value: Sendable>(
        to address: RPCAddress, endpoint: VerbsEndpoint, configuration: RPCConfiguration,
        setupTimeout: Duration = defaultSetupTimeout,
        _ body: (VerbsTransport) async throws -> Value
    ) async throws -> Value {
        var configuration = configuration
        configuration.transferBackends.append(endpoint.offer)
        return try await TransferError.mapping(backend: "verbs", peer: address, method: VerbsTarget.connectMethod) {
            try await RPCConnection.withConnection(to: address, configuration: configuration) { connection in
                _ = try verbsOffer(of: connection.peer.hello)
                var request = Loom_Transfer_VerbsConnectRequest()
                request.sender = configuration.nodeName
                request.senderEpoch = configuration.epoch
                let link = VerbsLink(connection: connection, endpoint: endpoint, request: request, setupTimeout: setupTimeout)
                do {
                    // Set up before `body` runs: a target that cannot
                    // connect fails the call here, not at the first write.
                    _ = try await link.session()
                    let value = try await body(VerbsTransport(endpoint: endpoint, link: link))
                    await link.close()
                    return value
                } catch {
                    await link.close()
                    throw error
                }
            }
        }
    }

    static func verbsOffer(of hello: Loom_Wire_Hello) throws(TransferError) -> Loom_Transfer_VerbsBackendOffer {
        for offer in hello.transferBackends {
            if case .verbs(let verbs) = offer.backend { return verbs }
        }
        throw TransferError(.backendUnavailable, "\(hello.nodeName) offers no verbs backend (it has no RDMA device, or does not serve VerbsTarget); use tcp or shm")
    }

    /// An operation written again after it completed is acknowledged and
    /// not sent: the target cannot tell a repeat from a new write (an
    /// immediate has no room for an operation id, and no CPU of the
    /// target's sees the write), so the writer keeps each op id applied once.
    public func write(_ operation: WriteOperation) async throws {
        if delivered.withLock({ $0.contains(operation.id) }) { return }
        let session = try await link.session()
        let segments = try operation.segments.map { segment throws(TransferError) in try Self.remoteWrite(segment, to: session) }
        try await endpoint.write(on: session.qp, segments, immediate: operation.immediate)
        link.succeeded()
        delivered.withLock { $0.insert(operation.id) }
    }

    /// Checked against the connected target: a descriptor of another owner
    /// or incarnation is refused before anything is sent.
    private static func remoteWrite(_ segment: WriteOperation.Segment, to session: VerbsLink.Session) throws(TransferError) -> VerbsSegment {
        let region = segment.region
        guard region.owner == session.owner, region.epoch == session.epoch else {
            throw TransferError(.staleDescriptor, "descriptor for region \(region.regionID) of \(region.owner) is from epoch \(region.epoch) but the connected target is \(session.owner) at epoch \(session.epoch) (it restarted); ask it for fresh descriptors")
        }
        guard let bytes = region.backendKeys[VerbsTarget.backendKey],
              let key = try? Loom_Transfer_VerbsRegionKey(serializedBytes: bytes) else {
            throw TransferError(.invalidRequest, "region \(region.regionID) of \(region.owner) was not registered for verbs")
        }
        return VerbsSegment(bytes: segment.bytes, remoteAddress: key.baseAddress + UInt64(segment.offset), remoteKey: key.rkey)
    }
}
