import LoomWire

/// The transfer backends, each one way of landing bytes in a peer's
/// registered memory.
public enum TransferBackend: String, Sendable, CaseIterable {
    /// Striped over TCP lanes; the target copies each write in.
    case tcp
    /// Into a /dev/shm mapping on the same host, committed by a doorbell.
    case shm
    /// libfabric RMA writes: no CPU of the target's on the path.
    case fabric
    /// RDMA WRITE WITH IMM through libibverbs.
    case verbs

    /// The backend a writer on this host uses for `region`, owned by a
    /// process on `host`: `fabric` when the owner registered it with
    /// libfabric, else `shm` when it shares this host and its region is a
    /// shared mapping, `tcp` otherwise.
    public static func choose(for region: RegionDescriptor, peerHost host: String) -> TransferBackend {
        if region.backendKeys[FabricTarget.backendKey] != nil { return .fabric }
        if host == HostIdentity.current && region.backendKeys[SharedMemoryRegion.backendKey] != nil { return .shm }
        return .tcp
    }
}

/// The receiving half of one backend, the same for each: what it offers
/// writers in HELLO, how memory is registered for them to write into and
/// taken back, and the RPC methods they connect through. Whatever lands is
/// checked and counted by one `TransferTarget`, and whatever it refuses is
/// a `TransferError`, whichever backend carried it.
public protocol TransferReceiver: Sendable {
    var backend: TransferBackend { get }
    /// What this process puts in its HELLO for writers to connect with.
    var offers: [Loom_Transfer_BackendOffer] { get }
    /// A new region of `length` bytes, zeroed, that peers can write into
    /// through this backend from now on.
    func register(length: Int) throws -> RegisteredRegion
    /// Revokes peers' access to `region` at once, even while its owner
    /// still holds the memory.
    func deregister(_ region: RegisteredRegion)
    /// The methods writers call to set up their side.
    func serve(into services: inout RPCServices)
    /// Releases what the backend holds beyond its regions (an endpoint).
    func close()
}

extension TransferReceiver {
    public var offers: [Loom_Transfer_BackendOffer] { [] }
    public func close() {}
}

/// `tcp`: plain memory, every write copied in by the target.
public struct TCPReceiver: TransferReceiver {
    public let target: TransferTarget

    public init(target: TransferTarget) {
        self.target = target
    }

    public var backend: TransferBackend { .tcp }

    public func register(length: Int) throws -> RegisteredRegion {
        target.regions.register(length: length)
    }

    public func deregister(_ region: RegisteredRegion) {
        target.regions.deregister(region)
    }

    public func serve(into services: inout RPCServices) {
        TransferService.register(into: &services, target: target)
    }
}

/// `shm`: regions in files under `directory`, which writers on this host
/// map and copy into themselves; the target only checks and counts.
public struct SharedMemoryReceiver: TransferReceiver {
    public let target: TransferTarget
    public let directory: String

    public init(target: TransferTarget, directory: String = "/dev/shm") {
        self.target = target
        self.directory = directory
    }

    public var backend: TransferBackend { .shm }

    public func register(length: Int) throws -> RegisteredRegion {
        try SharedMemoryRegion.register(in: target.regions, length: length, directory: directory)
    }

    public func deregister(_ region: RegisteredRegion) {
        target.regions.deregister(region)
    }

    public func serve(into services: inout RPCServices) {
        TransferService.registerShared(into: &services, target: target)
    }
}

extension FabricTarget: TransferReceiver {
    public var backend: TransferBackend { .fabric }
    public var offers: [Loom_Transfer_BackendOffer] { [offer] }
    public func close() { endpoint.close() }
}

extension VerbsTarget: TransferReceiver {
    public var backend: TransferBackend { .verbs }
    public var offers: [Loom_Transfer_BackendOffer] { [offer] }
    public func close() { endpoint.close() }
}
