import LoomWire
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import struct Foundation.Data

/// The `fabric` backend: one-sided RMA writes through libfabric into a
/// peer's registered memory, the immediate carried as remote completion
/// data. The peer's endpoint address comes from its RPC HELLO; an attach
/// call then gives this writer a slot for deduplication.
public final class FabricTransport: TransferTransport {
    let endpoint: FabricEndpoint
    let peer: UInt64
    let attachment: Loom_Transfer_FabricAttachResponse
    let ackTimeout: Duration
    private let sequences = NIOLockedValueBox(SequenceNumbers())
    /// Set by a failed write: see `confirmConnection`.
    private let suspect = Atomic<Bool>(false)

    init(endpoint: FabricEndpoint, peer: UInt64, attachment: Loom_Transfer_FabricAttachResponse, ackTimeout: Duration) {
        self.endpoint = endpoint
        self.peer = peer
        self.attachment = attachment
        self.ackTimeout = ackTimeout
    }

    /// Connects to a peer serving `FabricTarget` at `address`, runs `body`
    /// with a transport that writes through `endpoint`, then detaches.
    public static func withTransport<Result: Sendable>(
        to address: RPCAddress, endpoint: FabricEndpoint, configuration: RPCConfiguration,
        ackTimeout: Duration = .seconds(10), _ body: (FabricTransport) async throws -> Result
    ) async throws -> Result {
        var configuration = configuration
        configuration.transferBackends.append(endpoint.offer)
        return try await TransferError.mapping(backend: "fabric", peer: address, method: FabricTarget.attachMethod) {
            try await RPCConnection.withConnection(to: address, configuration: configuration) { connection in
                let offer = try fabricOffer(of: connection.peer.hello, provider: endpoint.capabilities.provider)
                let peer = try endpoint.insertPeer(Array(offer.address))
                defer { endpoint.removePeer(peer) }
                var attach = Loom_Transfer_FabricAttachRequest()
                attach.sender = configuration.nodeName
                attach.senderEpoch = configuration.epoch
                let attachment: Loom_Transfer_FabricAttachResponse = try await connection.unary(method: FabricTarget.attachMethod, try RPCMessage(attach)).decode()
                return try await body(FabricTransport(endpoint: endpoint, peer: peer, attachment: attachment, ackTimeout: ackTimeout))
            }
        }
    }

    static func fabricOffer(of hello: Loom_Wire_Hello, provider: String) throws(TransferError) -> Loom_Transfer_FabricBackendOffer {
        let offers = hello.transferBackends.compactMap { offer -> Loom_Transfer_FabricBackendOffer? in
            if case .fabric(let fabric) = offer.backend { return fabric }
            return nil
        }
        guard let offer = offers.first(where: { $0.provider == provider }) else {
            let others = offers.isEmpty ? "no fabric endpoint at all" : "only \(offers.map(\.provider).joined(separator: ", "))"
            throw TransferError(.peerUnavailable, "\(hello.nodeName) offers no fabric endpoint for provider \"\(provider)\" (it offers \(others)); open the same provider on both sides")
        }
        return offer
    }

    public func write(_ operation: WriteOperation) async throws {
        if suspect.load(ordering: .relaxed) { try await confirmConnection() }
        do {
            try await post(operation)
        } catch let error as TransferError where error.code == .ackLost || error.code == .peerUnavailable {
            suspect.store(true, ordering: .relaxed)
            throw error
        }
    }

    /// Connection-based providers (`tcp;ofi_rxm`) drop the connection under
    /// a write the target refused, and until the provider has noticed, a
    /// write posted to the peer goes onto the dead connection and fails
    /// too. So after a failure, writes that only ring the doorbell (no
    /// data: the target sees nothing, and repeating one is harmless) go
    /// first until one gets through, which it does once the provider has
    /// connected again.
    private func confirmConnection() async throws {
        let budget = min(ackTimeout, Self.reconnectBudget)
        let deadline = ContinuousClock.now + budget
        let probe = ring(peer, data: nil)
        while true {
            do {
                try await endpoint.post([probe], timeout: max(deadline - .now, .milliseconds(1)))
                suspect.store(false, ordering: .relaxed)
                return
            } catch let error as TransferError {
                guard endpoint.isOpen, ContinuousClock.now < deadline else {
                    throw TransferError(.peerUnavailable, "the connection to the fabric peer did not come back within \(budget) after a failed write (last: \(error.message)); the peer may be gone")
                }
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// How long a connection may take to come back after a failed write:
    /// rxm reconnects within a millisecond on loopback, so a peer still
    /// unreachable after this is taken as gone (a write to it fails after
    /// this long, not after the whole ack timeout).
    static let reconnectBudget: Duration = .seconds(1)

    private func post(_ operation: WriteOperation) async throws {
        var writes = try operation.segments.map(remoteWrite)
        guard let immediate = operation.immediate else {
            if !writes.isEmpty { try await endpoint.post(writes, timeout: ackTimeout) }
            return
        }
        let data = FabricCompletionData(immediate: immediate, slot: UInt16(truncatingIfNeeded: attachment.slot),
                                        sequence: sequences.withLockedValue { $0.number(for: operation.id) })
        if endpoint.capabilities.orderedWrites, !writes.isEmpty {
            // Placed in order, so when the last write's data is seen, all
            // of the operation's bytes are in place.
            writes[writes.count - 1].data = data.raw
            return try await endpoint.post(writes, timeout: ackTimeout)
        }
        if !writes.isEmpty { try await endpoint.post(writes, timeout: ackTimeout) }
        try await endpoint.post([ring(peer, data: data.raw)], timeout: ackTimeout)
    }

    /// A write into the target's doorbell, which nobody reads: empty where
    /// the provider completes empty writes, else one byte.
    private func ring(_ peer: UInt64, data: UInt64?) -> FabricWrite {
        let bytes = endpoint.capabilities.completesEmptyWrites ? ByteBuffer() : ByteBuffer(bytes: [0])
        return FabricWrite(bytes: bytes, peer: peer, remoteAddress: attachment.doorbell.baseAddress, key: attachment.doorbell.key, data: data)
    }

    /// Checked against the attached target: a descriptor of another owner or
    /// incarnation is refused before anything is sent.
    private func remoteWrite(_ segment: WriteOperation.Segment) throws(TransferError) -> FabricWrite {
        let region = segment.region
        guard region.owner == attachment.owner, region.epoch == attachment.epoch else {
            throw TransferError(.staleDescriptor, "descriptor for region \(region.regionID) of \(region.owner) is from epoch \(region.epoch) but the attached target is \(attachment.owner) at epoch \(attachment.epoch) (it restarted); ask it for fresh descriptors")
        }
        guard let bytes = region.backendKeys[FabricTarget.backendKey],
              let key = try? Loom_Transfer_FabricRegionKey(serializedBytes: bytes) else {
            throw TransferError(.invalidRequest, "region \(region.regionID) of \(region.owner) was not registered for fabric")
        }
        return FabricWrite(bytes: segment.bytes, peer: peer, remoteAddress: key.baseAddress + UInt64(segment.offset), key: key.key, data: nil)
    }
}

/// Sequence numbers per operation id, so an operation written twice (a
/// retry, an injected duplicate) carries the same number both times.
struct SequenceNumbers {
    private var next: UInt16 = 0
    private var recent: [UInt64: UInt16] = [:]
    /// The remembered operations, a ring whose oldest is at `head`.
    private var order: [UInt64] = []
    private var head = 0

    mutating func number(for operation: UInt64) -> UInt16 {
        if let known = recent[operation] { return known }
        next &+= 1
        recent[operation] = next
        if order.count < DuplicateFilter<UInt64>.defaultWindow {
            order.append(operation)
        } else {
            recent.removeValue(forKey: order[head])
            order[head] = operation
            head = (head + 1) % DuplicateFilter<UInt64>.defaultWindow
        }
        return next
    }
}

extension FabricEndpoint {
    /// This endpoint as a HELLO offer: its provider and address.
    public var offer: Loom_Transfer_BackendOffer {
        var fabric = Loom_Transfer_FabricBackendOffer()
        fabric.provider = capabilities.provider
        fabric.address = Data(address)
        var offer = Loom_Transfer_BackendOffer()
        offer.fabric = fabric
        return offer
    }
}
