import LoomEngine
import LoomProtocol
import LoomTransfer
import LoomWire

extension KVStoreNode {
    /// Looks up the longest leading run of the chain held here, leases it,
    /// pushes it into the caller's reserved blocks with one write carrying
    /// the caller's immediate, and ends the lease.
    func get(_ request: Loom_Kvstore_GetRequest) async throws -> Loom_Kvstore_GetResponse {
        let target = request.target
        guard target.bytesPerBlock == UInt64(slotBytes) else {
            throw WireError(.badMessage, "the caller's KV blocks are \(target.bytesPerBlock) bytes but this store's are \(slotBytes); are both serving the same model?")
        }
        let remote: RegionDescriptor
        do {
            remote = try RegionDescriptor(serialized: [UInt8](target.region))
        } catch {
            throw WireError(.badMessage, "the get's target region does not decode (\(error))")
        }
        let chain = request.chain.prefix(target.blocks.count).map(BlockHash.init(rawValue:))
        counters.lookups.add(1, ordering: .relaxed)
        let (leases, fromDRAM, fromDisk) = leaseRun(chain)
        defer { index.withLock { index in for lease in leases { index.endLease(lease.id) } } }
        counters.hitBlocks.add(UInt64(fromDRAM), ordering: .relaxed)
        counters.diskHitBlocks.add(UInt64(fromDisk), ordering: .relaxed)
        counters.missedBlocks.add(UInt64(chain.count - fromDRAM - fromDisk), ordering: .relaxed)
        let slots = leases.flatMap { $0.blocks.map(\.slot) }
        guard !slots.isEmpty else { return Loom_Kvstore_GetResponse() }
        let operation = try WriteOperation.paged(
            from: region, pages: slots, stride: slotBytes,
            to: remote, pages: target.blocks.prefix(slots.count).map { Int($0) }, stride: slotBytes,
            pageLength: slotBytes, immediate: target.immediate)
        do {
            try await transfer.peers.write(operation, into: remote, at: .tcp(host: target.transferHost, port: Int(target.transferPort)),
                                           peerHost: target.hostID)
        } catch let error as TransferError {
            throw WireError(error)
        }
        var response = Loom_Kvstore_GetResponse()
        response.blocks = UInt32(slots.count)
        response.fromDisk = UInt32(fromDisk)
        response.writes = 1
        return response
    }
}
