import LoomTransfer
import Synchronization

/// A decode worker's reservations when prefill workers write over `fabric`.
///
/// With `tcp` and `shm` the decode worker copies each write in itself and
/// checks it against the reservation's lease first (`LockedWriteLeases`).
/// A fabric write lands with no code of ours on the path, so the KV pool is
/// never registered with the fabric endpoint. Each reservation instead gets
/// a registration of its own, just large enough for its blocks, and the
/// prefill worker writes there (page `i` standing for the reservation's
/// `i`th block). When the writes are counted, the registration is revoked
/// and its bytes are copied into the reserved blocks. When the lease runs
/// out first, it is revoked unread, and a late write fails at the writer
/// because the key is gone. Either way nothing lands in blocks the lease
/// does not cover, as with the other backends; the price is one copy of the
/// blocks, which costs far less than sending them.
final class FabricStaging: Sendable {
    /// A receiver that cannot refuse a write before it lands (`fabric`).
    let receiver: any TransferReceiver
    private let staged = Mutex<[UInt32: Staged]>([:])

    private struct Staged: Sendable {
        let region: RegisteredRegion
        /// Pool block of each staged page, in page order.
        let blocks: [Int]
    }

    /// `receiver` shares the worker's region table (so staged regions
    /// carry its owner and epoch) and counters (so `attach` sees fabric
    /// writes like any other), as `TransferNode.standard` makes it.
    init(receiver: any TransferReceiver) {
        self.receiver = receiver
    }

    /// A region for `immediate`'s prefill to write `blocks` into.
    func stage(_ immediate: UInt32, blocks: [Int], bytesPerBlock: Int) throws -> RegisteredRegion {
        precondition(!blocks.isEmpty, "a reservation with nothing to fill needs no staging")
        let region = try receiver.register(length: blocks.count * bytesPerBlock)
        staged.withLock { $0[immediate] = Staged(region: region, blocks: blocks) }
        return region
    }

    /// Revokes the writer's access, then copies what landed into `pool`
    /// (nothing if `immediate` was never staged).
    func unstage(_ immediate: UInt32, into pool: RegisteredRegion, bytesPerBlock: Int) {
        guard let entry = revoke(immediate) else { return }
        let source = UnsafeRawPointer(entry.region.bytes.baseAddress!)
        let destination = pool.bytes.baseAddress!
        for (page, block) in entry.blocks.enumerated() {
            (destination + block * bytesPerBlock).copyMemory(from: source + page * bytesPerBlock, byteCount: bytesPerBlock)
        }
    }

    /// Revokes the writer's access and drops what landed, if anything did.
    func discard(_ immediate: UInt32) {
        _ = revoke(immediate)
    }

    /// Forgets `immediate`'s staging and revokes the writer's access to it.
    private func revoke(_ immediate: UInt32) -> Staged? {
        guard let entry = staged.withLock({ $0.removeValue(forKey: immediate) }) else { return nil }
        receiver.deregister(entry.region)
        return entry
    }

    func close() {
        let all = staged.withLock { staged in
            defer { staged.removeAll() }
            return staged
        }
        for entry in all.values { receiver.deregister(entry.region) }
    }
}
