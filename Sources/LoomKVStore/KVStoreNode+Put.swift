import LoomProtocol
import LoomTransfer
import LoomWire

extension KVStoreNode {
    /// Put, phase one: checks each offered header against this store's
    /// model and layout and hands out slots for the blocks it lacks, all
    /// under one immediate the writer's writes carry.
    func reserve(_ request: Loom_Kvstore_PutReserveRequest) throws -> Loom_Kvstore_PutReservation {
        var response = Loom_Kvstore_PutReservation()
        var offered: [(position: Int, header: StoredBlockHeader)] = []
        response.slots = Array(repeating: Self.refused, count: request.headers.count)
        for (position, bytes) in request.headers.enumerated() {
            do throws(StoreError) {
                let header = try StoredBlockHeader(decoding: bytes)
                try header.verify(modelID: configuration.modelID, layout: configuration.layout, payload: nil)
                offered.append((position, header))
            } catch {
                response.refused.append("header \(position): \(error.message)")
            }
        }
        // A block on disk is held: sending it again would only race the
        // reads that bring it back into DRAM.
        let onDisk = Set(offered.filter { disk?.contains($0.header.hash) == true }.map(\.position))
        for position in onDisk { response.slots[position] = Self.exists }
        offered.removeAll { onDisk.contains($0.position) }
        var removed: [StoreIndex.Removal] = []
        let outcomes = index.withLock { $0.reserve(offered.map(\.header.hash), now: .now, lease: configuration.lease, removed: &removed) }
        // Before anyone learns of the freed slots, so their bytes are whole.
        demote(removed)
        var pending: [PendingBlock] = []
        for ((position, header), outcome) in zip(offered, outcomes) {
            switch outcome {
            case .reserved(let slot):
                response.slots[position] = Int32(slot)
                pending.append(PendingBlock(header: header, slot: slot))
            case .exists: response.slots[position] = Self.exists
            case .full: response.slots[position] = Self.full
            }
        }
        let immediate = nextImmediate()
        if !pending.isEmpty {
            puts.open(immediate, .init(holder: pending, pages: pending.map(\.slot), of: region.descriptor, pageBytes: slotBytes,
                                       deadline: .now + configuration.lease))
        }
        response.region = try region.descriptor.proto.serializedData()
        response.slotBytes = UInt64(slotBytes)
        response.immediate = immediate
        response.transferHost = configuration.host
        response.transferPort = UInt32(port)
        response.hostID = HostIdentity.current
        response.leaseMs = UInt32(clamping: configuration.lease.wholeMilliseconds)
        return response
    }

    static let exists: Int32 = -1, full: Int32 = -2, refused: Int32 = -3

    /// Put, phase two: waits for the writer's writes, then makes visible
    /// each block whose slot they covered whole; a block left partly stale
    /// is dropped, never served. The bytes are not read here: a counted
    /// write landed whole (the transfer layer's contract), and reading
    /// every byte again would cost as much as the write itself. The header's
    /// checksum is checked where bytes can rot: on the way to disk and on
    /// every read back.
    func commit(_ request: Loom_Kvstore_PutCommitRequest) async throws -> Loom_Kvstore_PutCommitResponse {
        let counters = transfer.target.counters
        if request.expectedWrites > 0 {
            do {
                try await counters.wait(for: request.immediate, count: Int(request.expectedWrites), timeout: .milliseconds(Int(request.timeoutMs)))
            } catch {
                abandon(request.immediate)
                throw WireError(.deadlineExceeded, "put \(request.immediate): \(error); nothing was stored, put the blocks again")
            }
        }
        guard let lease = puts.close(request.immediate) else {
            throw WireError(.badMessage, "put \(request.immediate) has no live reservation (committed already, or its lease ran out); reserve again")
        }
        counters.reset(request.immediate)
        var response = Loom_Kvstore_PutCommitResponse()
        for block in lease.holder {
            do throws(StoreError) {
                guard request.expectedWrites > 0 else {
                    throw StoreError(.notWritten, "block \(block.header.hash) was reserved but the commit names no writes")
                }
                guard lease.isWrittenWhole(page: block.slot) else {
                    throw StoreError(.notWritten, "block \(block.header.hash): the put's writes did not cover its whole slot; it was not stored")
                }
                try index.withLock { index throws(StoreError) in
                    try index.commit(block.header, now: .now)
                    record([.stored(hash: block.header.hash, parent: block.header.parent)])
                }
                response.committed += 1
            } catch {
                index.withLock { $0.abandon(block.header.hash) }
                response.refused.append(error.message)
            }
        }
        return response
    }

    /// Gives up a put whose writes did not all arrive, if it is still open.
    private func abandon(_ immediate: UInt32) {
        guard let lease = puts.close(immediate) else {
            transfer.target.counters.reset(immediate)
            return
        }
        forget(immediate, lease)
    }

    /// Frees a closed put's slots and its immediate's count.
    func forget(_ immediate: UInt32, _ lease: WriteLeases<[PendingBlock]>.Lease) {
        transfer.target.counters.reset(immediate)
        index.withLock { index in for block in lease.holder { index.abandon(block.header.hash) } }
    }
}
