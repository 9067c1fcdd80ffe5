import LoomEngine
import LoomProtocol
import LoomTransfer
import LoomWire

extension KVStoreNode {
    /// Looks up the longest leading run of the chain held here, leases it,
    /// pushes it into the caller's reserved blocks with writes carrying the
    /// caller's immediate (one, unless some blocks had to come from disk
    /// through bounce buffers), and ends the lease.
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
        await waitForDemotions(of: chain)
        let run = leaseRun(chain)
        // The leases end once the blocks are pushed and, for those this
        // read made worth keeping, written to disk.
        defer { Task { await self.keepOnDisk(run.leases) } }
        counters.hitBlocks.add(UInt64(run.fromDRAM), ordering: .relaxed)
        counters.diskHitBlocks.add(UInt64(run.fromDisk), ordering: .relaxed)
        counters.missedBlocks.add(UInt64(chain.count - run.count), ordering: .relaxed)
        guard run.count > 0 else { return Loom_Kvstore_GetResponse() }
        let writes = try push(run, to: remote, pages: target.blocks.prefix(run.count).map { Int($0) }, immediate: target.immediate)
        do {
            for write in writes {
                try await transfer.peers.write(write, into: remote, at: .tcp(host: target.transferHost, port: Int(target.transferPort)),
                                               peerHost: target.hostID)
            }
        } catch let error as TransferError {
            throw WireError(error)
        }
        var response = Loom_Kvstore_GetResponse()
        response.blocks = UInt32(run.count)
        response.fromDisk = UInt32(run.fromDisk)
        response.writes = UInt32(writes.count)
        return response
    }

    /// One write per stretch of blocks from one kind of source: slots of
    /// the registered region, or bounce buffers read from disk.
    private func push(_ run: StoreRun, to remote: RegionDescriptor, pages: [Int], immediate: UInt32) throws -> [WriteOperation] {
        var writes: [WriteOperation] = []
        var start = 0
        while start < run.count {
            let isSlot = { (source: StoreRun.Source) in if case .slot = source { true } else { false } }
            let kind = isSlot(run.sources[start])
            let end = run.sources[start...].firstIndex { isSlot($0) != kind } ?? run.count
            let targets = Array(pages[start..<end])
            if kind {
                let slots = run.sources[start..<end].map { if case .slot(let slot) = $0 { slot } else { -1 } }
                writes.append(try .paged(from: region, pages: slots, stride: slotBytes, to: remote, pages: targets, stride: slotBytes,
                                         pageLength: slotBytes, immediate: immediate))
            } else {
                let buffers = run.sources[start..<end].compactMap { if case .bounce(let buffer) = $0 { buffer } else { nil } }
                writes.append(try .pages(buffers, to: remote, pages: targets, stride: slotBytes, immediate: immediate))
            }
            start = end
        }
        return writes
    }
}
