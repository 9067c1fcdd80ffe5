import LoomWire
import NIOConcurrencyHelpers
import NIOCore
import struct Foundation.Data

/// The receiving side of the `fabric` backend: regions registered with the
/// endpoint (so peers write into them with no CPU of ours involved), and the
/// immediates that peers' writes carry, counted once each.
///
/// Unlike `tcp` and `shm`, the target sees a write only after its bytes
/// landed, so it cannot apply a `WriteAdmission` policy first. A target
/// that needs one exposes only what a policy would admit, as a decode
/// worker does: a registration per reservation, revoked when it ends
/// (`FabricStaging` in LoomWorker).
public final class FabricTarget: Sendable {
    public static let attachMethod: UInt32 = 102
    public static let backendKey = "fabric"

    public let endpoint: FabricEndpoint
    public let target: TransferTarget
    /// Where immediate-only writes land: a few bytes nobody reads.
    private let doorbell: (memory: RegisteredRegion, registration: FabricEndpoint.Registration)
    private let registrations = NIOLockedValueBox<[UInt32: FabricEndpoint.Registration]>([:])
    private let senders = NIOLockedValueBox(SenderSlots())

    public init(endpoint: FabricEndpoint, target: TransferTarget) throws(TransferError) {
        precondition(target.admission == nil, "a fabric target cannot check writes before they land; see FabricTarget")
        self.endpoint = endpoint
        self.target = target
        let bell = RegisteredRegion(descriptor: RegionDescriptor(owner: target.regions.owner, regionID: 0, epoch: target.regions.epoch, length: 8))
        doorbell = (bell, try endpoint.register(bell.bytes, remoteWrite: true))
        endpoint.onRemoteData { [weak self] data in self?.landed(data) }
        target.counters.pollWhileWaiting(endpoint)
    }

    /// What this target puts in its HELLO: the provider and its address.
    public var offer: Loom_Transfer_BackendOffer { endpoint.offer }

    /// Registers a new region of `length` bytes for peers to write into.
    public func register(length: Int) throws -> RegisteredRegion {
        try target.regions.register(length: length) { descriptor in
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
            memory.initializeMemory(as: UInt8.self, repeating: 0)
            let registration: FabricEndpoint.Registration
            do { registration = try endpoint.register(memory, remoteWrite: true) } catch {
                memory.deallocate()
                throw error
            }
            var described = descriptor
            described.backendKeys[Self.backendKey] = try key(registration, base: memory).serializedBytes()
            registrations.withLockedValue { $0[descriptor.regionID] = registration }
            return RegisteredRegion(descriptor: described, memory: memory) { memory in
                registration.deregister()
                memory.deallocate()
            }
        }
    }

    /// Deregisters `region` and revokes peers' access to it at once, even
    /// while the owner still holds the memory.
    public func deregister(_ region: RegisteredRegion) {
        target.regions.deregister(region)
        registrations.withLockedValue { $0.removeValue(forKey: region.descriptor.regionID) }?.deregister()
    }

    private func key(_ registration: FabricEndpoint.Registration, base: UnsafeMutableRawBufferPointer) -> Loom_Transfer_FabricRegionKey {
        var key = Loom_Transfer_FabricRegionKey()
        key.key = registration.key
        key.baseAddress = endpoint.capabilities.virtualAddressing ? UInt64(UInt(bitPattern: base.baseAddress)) : 0
        return key
    }

    /// Serves writers' introductions.
    public func serve(into services: inout RPCServices) {
        services.unary(Self.attachMethod) { [self] request in
            let attach: Loom_Transfer_FabricAttachRequest = try request.message.decode()
            var response = Loom_Transfer_FabricAttachResponse()
            response.slot = UInt32(senders.withLockedValue { $0.attach(sender: "\(attach.sender)#\(attach.senderEpoch)") })
            response.epoch = target.regions.epoch
            response.owner = target.regions.owner
            response.doorbell = key(doorbell.registration, base: doorbell.memory.bytes)
            return try RPCMessage(response)
        }
    }

    /// A peer's write landed with completion data: count its immediate,
    /// once per (slot, sequence) when the provider carries 8 bytes.
    private func landed(_ data: UInt64) {
        let immediate = FabricCompletionData(data)
        if endpoint.capabilities.completionDataBytes >= 8 {
            guard senders.withLockedValue({ $0.firstDelivery(immediate) }) else { return }
        }
        target.counters.record(immediate.immediate)
    }
}

/// The 64 bits of remote completion data a `fabric` write carries: the
/// immediate, and the writer's slot and sequence number for deduplication.
struct FabricCompletionData: Hashable {
    var immediate: UInt32
    var slot: UInt16
    var sequence: UInt16

    init(immediate: UInt32, slot: UInt16, sequence: UInt16) {
        self.immediate = immediate
        self.slot = slot
        self.sequence = sequence
    }

    init(_ raw: UInt64) {
        self.init(immediate: UInt32(truncatingIfNeeded: raw), slot: UInt16(truncatingIfNeeded: raw >> 48), sequence: UInt16(truncatingIfNeeded: raw >> 32))
    }

    var raw: UInt64 { UInt64(slot) << 48 | UInt64(sequence) << 32 | UInt64(immediate) }
}

/// Writers attached to a target, by slot, with the sequence numbers each
/// delivered lately. A sequence number comes back only after 65536 more
/// writes from the same writer, far past the window kept here.
struct SenderSlots {
    private struct Sender {
        var name: String
        var recent = DuplicateFilter<UInt16>()

        mutating func firstDelivery(_ sequence: UInt16) -> Bool {
            recent.insert(sequence)
        }
    }

    private var slots: [UInt16: Sender] = [:]
    private var next: UInt16 = 1

    mutating func attach(sender: String) -> UInt16 {
        let slot = next
        next = next == .max ? 1 : next + 1
        slots[slot] = Sender(name: sender)
        return slot
    }

    /// False for a write seen before (a duplicated delivery) or from a slot
    /// that was never handed out.
    mutating func firstDelivery(_ data: FabricCompletionData) -> Bool {
        // Mutated in place through the dictionary: a copied-out Sender would
        // copy its whole window on every write.
        slots[data.slot]?.firstDelivery(data.sequence) ?? false
    }
}
