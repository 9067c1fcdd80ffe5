import NIOConcurrencyHelpers

/// Memory a process lets peers write into. The bytes are allocated here and
/// live until the region is deallocated by its last reference.
///
/// `@unchecked Sendable`: the one mutable thing is the memory itself, and the
/// engine's contract is the RDMA one: a write touches only the bytes its
/// segment names, concurrent writes to overlapping bytes are the caller's bug
/// (as on real hardware), and the owner reads a range only after the
/// immediate counter says the writes into it completed. The counter's lock
/// gives that read a happens-before edge to the copy that filled the range.
public final class RegisteredRegion: @unchecked Sendable {
    public let descriptor: RegionDescriptor
    let memory: UnsafeMutableRawBufferPointer
    private let release: @Sendable (UnsafeMutableRawBufferPointer) -> Void

    init(descriptor: RegionDescriptor) {
        self.descriptor = descriptor
        self.memory = .allocate(byteCount: descriptor.length, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        self.release = { $0.deallocate() }
    }

    /// Memory that someone else allocated (a shared mapping); `release`
    /// unmaps it when the region goes away.
    init(descriptor: RegionDescriptor, memory: UnsafeMutableRawBufferPointer, release: @escaping @Sendable (UnsafeMutableRawBufferPointer) -> Void) {
        self.descriptor = descriptor
        self.memory = memory
        self.release = release
    }

    deinit { release(memory) }

    public var count: Int { memory.count }

    /// The memory itself, for an owner that computes in place (a decode
    /// worker's KV pool lives in its registered region). The owner keeps
    /// this region alive as long as it uses the pointer.
    public var bytes: UnsafeMutableRawBufferPointer { memory }

    /// Copies bytes out; for the owner after the counter says they are there.
    public func read(offset: Int, count: Int) throws(TransferError) -> [UInt8] {
        try descriptor.checkBounds(offset: offset, count: count)
        return Array(memory[offset..<offset + count])
    }

    /// Writes local bytes, for the owner preparing data to send.
    public func fill(offset: Int, with bytes: some Collection<UInt8>) throws(TransferError) {
        try descriptor.checkBounds(offset: offset, count: bytes.count)
        UnsafeMutableRawBufferPointer(rebasing: memory[offset..<offset + bytes.count]).copyBytes(from: bytes)
    }

    func store(offset: Int, bytes: UnsafeRawBufferPointer) {
        UnsafeMutableRawBufferPointer(rebasing: memory[offset..<offset + bytes.count]).copyMemory(from: bytes)
    }
}

/// The regions one process has registered, by id. Region ids are never
/// reused within an epoch; the epoch is the process incarnation.
public final class RegionTable: Sendable {
    public let owner: String
    public let epoch: UInt64
    private let regions = NIOLockedValueBox<(next: UInt32, byID: [UInt32: RegisteredRegion])>((1, [:]))

    public init(owner: String, epoch: UInt64) {
        self.owner = owner
        self.epoch = epoch
    }

    public func register(length: Int, backendKeys: [String: [UInt8]] = [:]) -> RegisteredRegion {
        precondition(length > 0, "a region needs at least one byte")
        return regions.withLockedValue { state in
            let id = state.next
            state.next += 1
            let region = RegisteredRegion(descriptor: RegionDescriptor(owner: owner, regionID: id, epoch: epoch, length: length, backendKeys: backendKeys))
            state.byID[id] = region
            return region
        }
    }

    /// Registers a region whose memory `make` provides for the descriptor it
    /// is given (the `shm` backend maps a shared file here).
    public func register(length: Int, make: (RegionDescriptor) throws -> RegisteredRegion) rethrows -> RegisteredRegion {
        precondition(length > 0, "a region needs at least one byte")
        let id = regions.withLockedValue { state in
            defer { state.next += 1 }
            return state.next
        }
        let region = try make(RegionDescriptor(owner: owner, regionID: id, epoch: epoch, length: length))
        regions.withLockedValue { $0.byID[id] = region }
        return region
    }

    public func deregister(_ region: RegisteredRegion) {
        regions.withLockedValue { _ = $0.byID.removeValue(forKey: region.descriptor.regionID) }
    }

    /// The region a peer's write names, after checking epoch and bounds.
    func resolve(regionID: UInt32, epoch: UInt64, offset: Int, count: Int) throws(TransferError) -> RegisteredRegion {
        guard epoch == self.epoch else {
            throw TransferError(.staleDescriptor, "descriptor for region \(regionID) is from epoch \(epoch) but \(owner) is at epoch \(self.epoch) (it restarted); ask it for fresh descriptors")
        }
        guard let region = regions.withLockedValue({ $0.byID[regionID] }) else {
            throw TransferError(.unknownRegion, "\(owner) has no region \(regionID) (deregistered?)")
        }
        try region.descriptor.checkBounds(offset: offset, count: count)
        return region
    }
}
