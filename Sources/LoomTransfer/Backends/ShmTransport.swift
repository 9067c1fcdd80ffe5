import LoomWire
import NIOConcurrencyHelpers
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The `shm` backend for peers on the same host: the writer copies straight
/// into the peer's shared mapping, then commits the write over a LoomWire
/// connection (a Unix socket), which is what wakes the peer and carries the
/// immediate and the acknowledgement. One copy, no bytes through the socket.
public final class ShmTransport: TransferTransport {
    public static let commitMethod: UInt32 = 101

    let connection: RPCConnection
    let sender: String
    let senderEpoch: UInt64
    let ackTimeout: Duration
    /// Peer regions mapped so far, by (region id, epoch); unmapped on close.
    private let mappings = NIOLockedValueBox<[String: PeerMapping]>([:])

    /// `@unchecked Sendable`: the pointer is only used to copy into ranges a
    /// descriptor allows (writes to overlapping bytes are the caller's bug,
    /// as on RDMA hardware), and it is unmapped only by `unmapAll`, which
    /// `withTransport` calls after `body`, i.e. after every write returned.
    struct PeerMapping: @unchecked Sendable {
        let memory: UnsafeMutableRawBufferPointer
    }

    init(connection: RPCConnection, sender: String, senderEpoch: UInt64, ackTimeout: Duration) {
        self.connection = connection
        self.sender = sender
        self.senderEpoch = senderEpoch
        self.ackTimeout = ackTimeout
    }

    public static func withTransport<Result: Sendable>(
        to address: RPCAddress, configuration: RPCConfiguration, ackTimeout: Duration = .seconds(10),
        _ body: (ShmTransport) async throws -> Result
    ) async throws -> Result {
        try await RPCConnection.withConnection(to: address, configuration: configuration) { connection in
            let transport = ShmTransport(connection: connection, sender: configuration.nodeName, senderEpoch: configuration.epoch, ackTimeout: ackTimeout)
            defer { transport.unmapAll() }
            return try await body(transport)
        }
    }

    public func write(_ operation: WriteOperation) async throws {
        var request = Loom_Transfer_WriteRequest()
        request.opID = operation.id
        request.sender = sender
        request.senderEpoch = senderEpoch
        request.carriesImmediate = operation.immediate != nil
        request.immediate = operation.immediate ?? 0
        for segment in operation.segments {
            let memory = try mapping(for: segment.region)
            // Bounds were checked against the descriptor when the operation
            // was built, and the mapping is exactly the descriptor's length.
            segment.bytes.withUnsafeReadableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: memory[segment.offset..<segment.offset + bytes.count]).copyMemory(from: bytes)
            }
            var wire = Loom_Transfer_WriteSegment()
            wire.regionID = segment.region.regionID
            wire.epoch = segment.region.epoch
            wire.offset = UInt64(segment.offset)
            wire.length = UInt64(segment.bytes.readableBytes)
            request.segments.append(wire)
        }
        do {
            _ = try await connection.unary(method: Self.commitMethod, try RPCMessage(request), timeout: ackTimeout)
        } catch let error as WireError {
            throw TCPTransport.transferError(error, opID: request.opID)
        }
    }

    private func mapping(for region: RegionDescriptor) throws(TransferError) -> UnsafeMutableRawBufferPointer {
        let key = "\(region.owner)/\(region.regionID)/\(region.epoch)"
        if let mapping = mappings.withLockedValue({ $0[key] }) { return mapping.memory }
        let memory = try SharedMemoryRegion.mapPeer(region)
        let kept = mappings.withLockedValue { mappings in
            if let existing = mappings[key] { return existing.memory }
            mappings[key] = PeerMapping(memory: memory)
            return memory
        }
        if kept.baseAddress != memory.baseAddress { munmap(memory.baseAddress, memory.count) }
        return kept
    }

    func unmapAll() {
        for mapping in mappings.withLockedValue({ mappings in defer { mappings = [:] }; return Array(mappings.values) }) {
            munmap(mapping.memory.baseAddress, mapping.memory.count)
        }
    }
}

extension TransferService {
    /// Serves commits of `shm` writes (register alongside `register(into:target:)`).
    public static func registerShared(into services: inout RPCServices, target: TransferTarget) {
        services.unary(ShmTransport.commitMethod) { request in
            let write: Loom_Transfer_WriteRequest = try request.message.decode()
            do {
                return try RPCMessage(try target.commitShared(write))
            } catch let error as TransferError {
                throw WireError(WireError.Code(rawValue: errorCodeBase + error.code.rawValue), error.message)
            }
        }
    }
}
