import LoomTransfer
import Synchronization

/// Immediates this worker hands out for its own ends (a store fetch, a
/// prefill group's fence), apart from reservations: those use request ids,
/// which count up from 1 and stay below the top bit.
final class ScratchImmediates: Sendable {
    private let next = Atomic<UInt32>(0)

    func take() -> UInt32 {
        0x8000_0000 | (next.wrappingAdd(1, ordering: .relaxed).oldValue & 0x7FFF_FFFF)
    }
}

/// Where a prefill group's other ranks say they are done with each chunk:
/// an immediate of this worker's transfer target, waited for before the
/// prefill answers. Once the router hears the prefill is over it may hand
/// the decode worker's blocks back, so no rank may still be writing.
struct PrefillFences: Sendable {
    let immediates: ScratchImmediates
    let counters: ImmediateCounters
    let leases: LockedWriteLeases<PoolWriter>
    /// Any region of this worker's: a fence's lease names no pages of it.
    let region: RegionDescriptor
    let host: String
    let port: BoundPort

    /// A fence accepted until `deadline`.
    func open(until deadline: ContinuousClock.Instant) -> UInt32 {
        let fence = immediates.take()
        leases.open(fence, .init(holder: .fence, pages: [Int](), of: region, pageBytes: 1, deadline: deadline))
        return fence
    }

    /// Waits until `count` signals came (or `deadline`), then forgets the fence.
    func wait(_ fence: UInt32, count: Int, until deadline: ContinuousClock.Instant) async throws {
        defer { close(fence) }
        guard count > 0 else { return }
        try await counters.wait(for: fence, count: count, timeout: max(.zero, deadline - .now))
    }

    func close(_ fence: UInt32) {
        _ = leases.close(fence)
        counters.reset(fence)
    }
}
