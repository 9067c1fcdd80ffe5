import LoomWire
import NIOConcurrencyHelpers
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The `shm` backend for peers on the same host: the writer copies straight
/// into the peer's shared mapping, then commits the write through a
/// doorbell, two rings in shared memory woken with futexes: a commit record
/// goes one way, the acknowledgement comes back (`ShmDoorbell/`). One copy,
/// no bytes and no commits through a socket. The Unix-socket LoomWire
/// connection only sets the doorbell up and, by closing, tells each side
/// that the other went away.
public final class ShmTransport: TransferTransport {
    /// Server-streaming: the writer names its doorbell file; the call stays
    /// open for as long as the doorbell is used.
    public static let doorbellMethod: UInt32 = 103

    let doorbell: DoorbellWriter
    /// Peer regions mapped so far, by (region id, epoch); unmapped on close.
    private let mappings = NIOLockedValueBox<[String: PeerMapping]>([:])

    /// `@unchecked Sendable`: the pointer is only used to copy into ranges a
    /// descriptor allows (writes to overlapping bytes are the caller's bug,
    /// as on RDMA hardware), and it is unmapped only by `unmapAll`, which
    /// `withTransport` calls after `body`, i.e. after every write returned.
    struct PeerMapping: @unchecked Sendable {
        let memory: UnsafeMutableRawBufferPointer
    }

    init(doorbell: DoorbellWriter) {
        self.doorbell = doorbell
    }

    public static func withTransport<Result: Sendable>(
        to address: RPCAddress, configuration: RPCConfiguration, ackTimeout: Duration = .seconds(10),
        _ body: (ShmTransport) async throws -> Result
    ) async throws -> Result {
        try await withTransport(to: address, configuration: configuration, ackTimeout: ackTimeout, geometry: .standard, body)
    }

    /// With a doorbell of `geometry`: tests use small rings to make them wrap.
    static func withTransport<Result: Sendable>(
        to address: RPCAddress, configuration: RPCConfiguration, ackTimeout: Duration, geometry: DoorbellGeometry,
        _ body: (ShmTransport) async throws -> Result
    ) async throws -> Result {
        try await TransferError.mapping(backend: "shm", peer: address, method: doorbellMethod) {
            try await RPCConnection.withConnection(to: address, configuration: configuration) { connection in
                try await withDoorbell(on: connection, configuration: configuration, ackTimeout: ackTimeout, geometry: geometry, body)
            }
        }
    }

    private static func withDoorbell<Result: Sendable>(
        on connection: RPCConnection, configuration: RPCConfiguration, ackTimeout: Duration, geometry: DoorbellGeometry,
        _ body: (ShmTransport) async throws -> Result
    ) async throws -> Result {
        let mapping = try DoorbellMapping.create(geometry: geometry)
        var setup = Loom_Transfer_ShmDoorbellRequest()
        setup.path = mapping.path
        setup.sender = configuration.nodeName
        setup.senderEpoch = configuration.epoch
        var ready = false
        do {
            return try await connection.serverStreaming(method: doorbellMethod, try RPCMessage(setup)) { stream in
                var replies = stream.makeAsyncIterator()
                guard try await replies.next() != nil else {
                    throw WireError(.connectionClosed, "the target ended the doorbell setup without answering")
                }
                ready = true
                let transport = ShmTransport(doorbell: DoorbellWriter(mapping: mapping, ackTimeout: ackTimeout))
                return try await transport.serve(watching: stream, body)
            }
        } catch let error where !ready {
            // The target never took the file, so it is still there to remove.
            mapping.unlinkIfPresent()
            guard let wire = error as? WireError else { throw error }
            throw TransferError(wire, backend: "shm", peer: connection.peer.hello.nodeName, method: doorbellMethod)
        }
    }

    /// Runs `body` while a child task watches the setup call, which carries
    /// nothing more: it ends only when the target stops serving the doorbell
    /// or the connection drops (the target's process died), and then every
    /// waiting write fails at once.
    private func serve<Result: Sendable>(watching stream: RPCResponseStream, _ body: (ShmTransport) async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [doorbell] in
                do {
                    for try await _ in stream {}
                    doorbell.peerGone("the target ended the doorbell call")
                } catch {
                    doorbell.peerGone("the doorbell call failed: \(error)")
                }
            }
            // Closed before the watcher is cancelled, so its own ending is
            // not mistaken for the peer going away.
            func finish() async {
                await doorbell.close()
                group.cancelAll()
                unmapAll()
            }
            do {
                let result = try await body(self)
                await finish()
                return result
            } catch {
                await finish()
                throw error
            }
        }
    }

    public func write(_ operation: WriteOperation) async throws {
        guard operation.segments.count <= CommitRecord.maxSegmentsPerWrite else {
            throw TransferError(.invalidRequest, "write \(operation.id) has \(operation.segments.count) segments; an shm write takes at most \(CommitRecord.maxSegmentsPerWrite): split it")
        }
        // Every segment is checked before any is copied, so a refused
        // write leaves nothing behind in the target's memory.
        let memories = try operation.segments.map { segment throws(TransferError) in
            let memory = try mapping(for: segment.region)
            // Checked against the mapping, not only the descriptor the
            // operation was built from: a mapping is shared by every
            // descriptor naming its region, and a forged or corrupt one
            // may claim more than the region has.
            guard segment.offset + segment.count <= memory.count else {
                throw TransferError(.outOfRegion, "write \(operation.id) reaches byte \(segment.offset + segment.count) of region \(segment.region.regionID) of \(segment.region.owner), which has \(memory.count) bytes; nothing was written")
            }
            return memory
        }
        for (segment, memory) in zip(operation.segments, memories) {
            segment.withUnsafeReadableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: memory[segment.offset..<segment.offset + bytes.count]).copyMemory(from: bytes)
            }
        }
        try await doorbell.commit(opID: operation.id, immediate: operation.immediate, segments: operation.segments.map(\.wire))
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
    /// Serves `shm` doorbells (`SharedMemoryReceiver` serves them):
    /// one per writer connection, each with a thread of its own for as long
    /// as that writer's setup call stays open. Cancelling the call (the
    /// writer left, or the server stops) stops the thread.
    public static func registerShared(into services: inout RPCServices, target: TransferTarget) {
        services.serverStreaming(ShmTransport.doorbellMethod) { request, stream in
            let setup: Loom_Transfer_ShmDoorbellRequest = try request.message.decode()
            do {
                let mapping = try DoorbellMapping.open(path: setup.path)
                try await stream.send(Loom_Transfer_ShmDoorbellReady())
                let doorbell = DoorbellTarget(mapping: mapping, target: target, sender: setup.sender, senderEpoch: setup.senderEpoch)
                let failure = await withTaskCancellationHandler {
                    await doorbell.join()
                } onCancel: {
                    doorbell.stop()
                }
                if let failure { throw failure }
            } catch let error as TransferError {
                throw WireError(error)
            }
        }
    }
}
