import LoomWire
import Synchronization

/// The receiving side of the `verbs` backend: regions registered with the
/// RDMA device (peers' RDMA WRITEs land in them with no CPU of ours
/// involved), a queue pair per writer, and the immediates writers' last
/// writes carry, counted once each (one receive completion per WRITE WITH
/// IMM: RC retransmits below us and never completes a write twice).
///
/// As with `fabric`, the target sees a write only after its bytes landed,
/// so it cannot apply a `WriteAdmission` policy first.
public final class VerbsTarget: Sendable {
    /// Server-streaming: one answer, then the call stays open while the
    /// writer uses the queue pair; its end (the writer done, or gone)
    /// destroys our side, so a vanished writer leaks nothing.
    public static let connectMethod: UInt32 = 105
    public static let backendKey = "verbs"

    public let endpoint: VerbsEndpoint
    public let target: TransferTarget
    private let registrations = Mutex<[UInt32: VerbsEndpoint.Registration]>([:])

    public init(endpoint: VerbsEndpoint, target: TransferTarget) {
        precondition(target.admission == nil, "a verbs target cannot check writes before they land; see VerbsTarget")
        self.endpoint = endpoint
        self.target = target
        endpoint.onImmediate { [counters = target.counters] immediate in counters.record(immediate) }
    }

    /// What this target puts in its HELLO: the device's port.
    public var offer: Loom_Transfer_BackendOffer { endpoint.offer }

    /// Registers a new region of `length` bytes for peers to write into.
    public func register(length: Int) throws -> RegisteredRegion {
        try target.regions.register(length: length) { descriptor in
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
            memory.initializeMemory(as: UInt8.self, repeating: 0)
            let registration: VerbsEndpoint.Registration
            do { registration = try endpoint.register(memory, remoteWrite: true) } catch {
                memory.deallocate()
                throw error
            }
            var key = Loom_Transfer_VerbsRegionKey()
            key.rkey = registration.keys.remoteKey
            key.baseAddress = UInt64(UInt(bitPattern: memory.baseAddress))
            var described = descriptor
            described.backendKeys[Self.backendKey] = try key.serializedBytes()
            registrations.withLock { $0[descriptor.regionID] = registration }
            return RegisteredRegion(descriptor: described, memory: memory) { memory in
                // Deregistered first: a peer's write must never land in
                // memory handed back to the allocator.
                registration.deregister()
                memory.deallocate()
            }
        }
    }

    /// Deregisters `region`: peers' writes naming its rkey fail from now on,
    /// even while the owner still holds the memory.
    public func deregister(_ region: RegisteredRegion) {
        target.regions.deregister(region)
        registrations.withLock { $0.removeValue(forKey: region.descriptor.regionID) }?.deregister()
    }

    /// Serves writers' queue-pair exchanges.
    public func serve(into services: inout RPCServices) {
        services.serverStreaming(Self.connectMethod) { [self] request, stream in
            let connect: Loom_Transfer_VerbsConnectRequest = try request.message.decode()
            let local = try endpoint.openQueuePair()
            defer { endpoint.closeQueuePair(local.qpNum) }
            // Up to RTS before answering: the writer may write the moment
            // it has our queue pair number.
            try endpoint.connect(local.qpNum, to: connect.queuePair)
            var response = Loom_Transfer_VerbsConnectResponse()
            response.queuePair = local
            response.epoch = target.regions.epoch
            response.owner = target.regions.owner
            try await stream.send(response)
            await untilCancelled()
        }
    }
}

/// Suspends until the calling task is cancelled: how a setup call that
/// stays open (its end being the signal) waits.
func untilCancelled() async {
    let (ended, end) = AsyncStream<Never>.makeStream()
    await withTaskCancellationHandler {
        for await _ in ended {}
    } onCancel: {
        end.finish()
    }
}
