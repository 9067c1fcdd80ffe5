import Foundation
import Logging
import LoomEngine
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore
import Synchronization

/// One store node: a DRAM tier of block slots in a registered region that
/// workers write into one-sided (`put`), and push from into their reserved
/// pool blocks (`get`), with the index that says what each slot holds; and
/// optionally a disk tier below it.
public final class KVStoreNode: Sendable {
    public let configuration: StoreConfiguration
    let transfer: TransferNode
    /// `configuration.slots` slots of `layout.payloadBytes` each.
    let region: RegisteredRegion
    let index: Mutex<StoreIndex>
    public let disk: DiskTier?
    /// Puts between reserve and commit: the slots each may write, and the
    /// headers the written bytes must match.
    let puts: LockedWriteLeases<[PendingBlock]>
    let counters = StoreCounters()
    /// Blocks stored, moved between tiers and removed since the router
    /// last heard, for its index; nil once too many piled up (the node
    /// then registers anew).
    let events = Mutex<[StoreEvent]?>([])
    private let immediates = Atomic<UInt32>(1)
    private let boundPort: Atomic<Int>

    struct PendingBlock: Sendable {
        let header: StoredBlockHeader
        let slot: Int
    }

    public init(configuration: StoreConfiguration, epoch: UInt64, logger: Logger = Logger(label: "loom.kvstore")) throws {
        self.configuration = configuration
        boundPort = Atomic(configuration.port)
        StaleSharedRegions.remove()
        let puts = LockedWriteLeases<[PendingBlock]>()
        self.puts = puts
        var rpc = RPCConfiguration(nodeName: configuration.name)
        rpc.epoch = epoch
        let target = TransferTarget(regions: RegionTable(owner: "\(configuration.name).pid\(ProcessInfo.processInfo.processIdentifier)", epoch: epoch), admission: puts)
        transfer = TransferNode(target: target, receivers: [SharedMemoryReceiver(target: target), TCPReceiver(target: target)], configuration: rpc)
        region = try transfer.register(length: configuration.slots * configuration.layout.payloadBytes, over: [.shm, .tcp])
        index = Mutex(StoreIndex(slots: configuration.slots))
        disk = configuration.disk.map {
            DiskTier(directory: $0.directory, capacityBytes: $0.capacityBytes, modelID: configuration.modelID, layout: configuration.layout, logger: logger)
        }
    }

    public var rpcConfiguration: RPCConfiguration { transfer.configuration }
    public var port: Int { boundPort.load(ordering: .relaxed) }
    public func advertise(port: Int) { boundPort.store(port, ordering: .relaxed) }

    public var services: RPCServices {
        var services = RPCServices()
        transfer.serve(into: &services)
        services.unary(StoreRPC.putReserve) { request, _ in (try self.reserve(request), ByteBuffer()) }
        services.unary(StoreRPC.putCommit) { request, _ in (try await self.commit(request), ByteBuffer()) }
        services.unary(StoreRPC.get) { request, _ in (try await self.get(request), ByteBuffer()) }
        services.unary(StoreRPC.stats) { _, _ in (self.stats, ByteBuffer()) }
        services.unary(StoreRPC.pin) { request, _ in
            var response = Loom_Kvstore_PinResponse()
            response.pinned = UInt32(self.pin(request.chain.map(BlockHash.init(rawValue:)), ttl: .milliseconds(Int(request.ttlMs))))
            return (response, ByteBuffer())
        }
        return services
    }

    public var stats: Loom_Kvstore_StoreStats {
        var stats = counters.snapshot
        stats.slots = UInt32(configuration.slots)
        let (committed, pinned) = index.withLock { ($0.committedCount, $0.pinnedCount(now: .now)) }
        stats.committed = UInt32(committed)
        stats.bytes = UInt64(committed * configuration.layout.payloadBytes)
        stats.pinnedBlocks = UInt32(pinned)
        if let disk {
            let tier = disk.snapshot
            stats.diskDir = disk.directory
            stats.diskBlocks = UInt32(tier.blocks)
            stats.diskBytes = UInt64(tier.bytes)
            stats.diskCapacityBytes = UInt64(disk.capacityBytes)
            stats.diskWrites = tier.writes
            stats.diskEvictions = tier.evictions
            stats.diskCorrupt = tier.corrupt
            stats.diskProblem = tier.problem ?? ""
        }
        return stats
    }

    /// Reclaims puts never committed and ends read leases whose time is up,
    /// every `interval`, until cancelled.
    public func sweep(every interval: Duration = .milliseconds(200)) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            for (immediate, lease) in puts.expire(now: now) { forget(immediate, lease) }
            _ = index.withLock { $0.expire(now: now) }
            try? await Task.sleep(for: interval)
        }
    }

    public func shutdown() {
        transfer.close()
    }

    /// Records what changed, for the next heartbeat. Called under the
    /// index's lock, so a registration's snapshot and the events after it
    /// never disagree.
    func record(_ changes: [KVCacheEvent], onDisk: Bool = false) {
        guard !changes.isEmpty else { return }
        events.withLock { events in
            guard events != nil else { return }
            events!.append(contentsOf: changes.map { StoreEvent(change: $0, onDisk: onDisk) })
            if events!.count > 1 << 16 { events = nil }
        }
    }

    /// Every block held now, in either tier, and those of them on disk
    /// only; a fresh start for the events.
    func snapshotResettingEvents() -> (all: [BlockHash], diskOnly: [BlockHash]) {
        index.withLock { index in
            events.withLock { $0 = [] }
            let dram = Set(index.committedHashes), disk = Set(disk?.hashes ?? [])
            return (Array(dram.union(disk)), Array(disk.subtracting(dram)))
        }
    }

    /// The changes since the last call; nil when some were dropped.
    func drainEvents() -> [StoreEvent]? {
        events.withLock { events in
            defer { if events != nil { events = [] } }
            return events
        }
    }

    func nextImmediate() -> UInt32 {
        immediates.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    var slotBytes: Int { configuration.layout.payloadBytes }
}

/// A change the router's index hears of: a block stored (in DRAM, or
/// moved to disk only) or removed from the node.
struct StoreEvent: Sendable {
    var change: KVCacheEvent
    var onDisk: Bool

    var wire: Loom_Cluster_CacheEvent {
        var wire = Loom_Cluster_CacheEvent(change)
        wire.onDisk = onDisk
        return wire
    }
}

/// What a store node counts for `loomctl cache` and its metrics.
final class StoreCounters: Sendable {
    let lookups = Atomic<UInt64>(0)
    let hitBlocks = Atomic<UInt64>(0)
    let diskHitBlocks = Atomic<UInt64>(0)
    let missedBlocks = Atomic<UInt64>(0)
    let evictions = Atomic<UInt64>(0)

    var snapshot: Loom_Kvstore_StoreStats {
        var stats = Loom_Kvstore_StoreStats()
        stats.lookups = lookups.load(ordering: .relaxed)
        stats.hitBlocks = hitBlocks.load(ordering: .relaxed)
        stats.diskHitBlocks = diskHitBlocks.load(ordering: .relaxed)
        stats.missedBlocks = missedBlocks.load(ordering: .relaxed)
        stats.evictions = evictions.load(ordering: .relaxed)
        return stats
    }

    func record(_ removed: [StoreIndex.Removal]) {
        let evicted = removed.count { $0.victim != nil }
        evictions.add(UInt64(evicted), ordering: .relaxed)
    }
}
