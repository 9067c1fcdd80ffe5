import CLoomShm
import LoomWire

/// How a doorbell file is laid out: a header of index and futex words, a
/// ring of commit records (writer → target) and a ring of acknowledgements
/// (target → writer). Both sides run the same build, so the layout is not
/// negotiated; the header's magic, version and ring sizes are checked when
/// the target maps the file.
struct DoorbellGeometry: Hashable, Sendable {
    static let magic: UInt64 = 0x4C4F_4F4D_4245_4C4C  // "LOOMBELL"
    static let version: UInt32 = 1
    static let headerBytes = 1024
    static let commitSlotBytes = 512
    static let ackSlotBytes = 256
    static let maxSlots = 1 << 16
    /// 256 records of up to 15 segments: a 64 MiB write in 64 KiB pages
    /// (1024 segments, 69 records) fits whole, so it is published at once.
    static let standard = try! DoorbellGeometry(commitSlots: 256, ackSlots: 256)

    /// One commit record settles at most two writes (a broken chain
    /// refused, then the write that broke it), so the target takes a record
    /// only with this many acknowledgement slots free.
    static let acksPerRecord = 2

    let commitSlots: Int
    let ackSlots: Int

    init(commitSlots: Int, ackSlots: Int) throws(TransferError) {
        guard (1...Self.maxSlots).contains(commitSlots), (Self.acksPerRecord...Self.maxSlots).contains(ackSlots) else {
            throw TransferError(.invalidRequest, "a doorbell needs 1...\(Self.maxSlots) commit slots and \(Self.acksPerRecord)...\(Self.maxSlots) ack slots, not \(commitSlots) and \(ackSlots)")
        }
        self.commitSlots = commitSlots
        self.ackSlots = ackSlots
    }

    var commitRingOffset: Int { Self.headerBytes }
    var ackRingOffset: Int { commitRingOffset + commitSlots * Self.commitSlotBytes }
    var fileBytes: Int { ackRingOffset + ackSlots * Self.ackSlotBytes }
}

/// Byte offsets of the header's words. Each side's hot words sit on cache
/// lines of their own, so the writer publishing commits does not bounce
/// the line the target publishes acknowledgements on.
enum DoorbellWord: Int {
    case magic = 0
    case version = 8
    case commitSlots = 12
    case ackSlots = 16
    /// Commit records ever published (written by the writer only).
    case commitHead = 64
    /// Commit records ever consumed (target only).
    case commitTail = 128
    /// Acknowledgements ever published (target only).
    case ackHead = 192
    /// Acknowledgements ever consumed (writer only).
    case ackTail = 256
    /// The target sleeps on this futex word; the writer rings it.
    case targetBell = 320
    case targetSleeping = 324
    /// The writer's thread sleeps on this one; the target rings it.
    case writerBell = 384
    case writerSleeping = 388
    /// Set by each side as its doorbell thread exits, so the other stops
    /// waiting without waiting for the RPC connection to drop.
    case writerClosed = 448
    case targetClosed = 512
}

/// One side's futex word and the flag saying that side sleeps on it. The
/// ringer pays for a FUTEX_WAKE only when the flag is up, so a busy stream
/// makes no system calls.
///
/// Why no wake-up is lost: the sleeper raises the flag, fences, then looks
/// for work; the ringer publishes, bumps the word, fences, then reads the
/// flag. Sequentially consistent fences on both sides mean at least one of
/// them sees the other. If the sleeper missed the work, the ringer saw the
/// flag and wakes it; and since the sleeper waits only while the word still
/// holds the value it read before looking, a bump in between makes the
/// wait return at once.
struct Bell {
    let word: UnsafeMutableRawPointer
    let sleeping: UnsafeMutableRawPointer

    /// Called after publishing something the owner waits for.
    func ring() {
        _ = loom_shm_fetch_add_u32(word, 1)
        loom_shm_fence()
        if loom_shm_load_acquire_u32(sleeping) != 0 { _ = loom_shm_futex_wake_all(word) }
    }

    /// Read by the owner before it looks for work.
    func value() -> UInt32 { loom_shm_load_acquire_u32(word) }

    /// Sleeps until rung or `timeout`, unless `hasWork`, asked again once
    /// the flag is up, finds something. `seen` is what `value()` returned
    /// before the owner last looked for work.
    func sleep(seen: UInt32, timeout: Duration, unless hasWork: () -> Bool) {
        loom_shm_store_release_u32(sleeping, 1)
        loom_shm_fence()
        if !hasWork() {
            // EINTR and spurious returns are fine: the caller looks again.
            _ = loom_shm_futex_wait(word, seen, Int64(max(timeout, .zero).wholeMicroseconds) * 1000)
        }
        loom_shm_store_release_u32(sleeping, 0)
    }
}

/// A single-producer, single-consumer ring of fixed-size slots. Head and
/// tail count records ever produced and consumed and only grow (at 64 bits
/// they never wrap); a record lives in slot `index % count`. Each side keeps
/// its own index locally and only publishes it; it reads the other's.
/// An index the other side could not have written (a consumer ahead of the
/// producer, a producer more than a ring ahead) means that side is broken
/// or hostile, and is an error rather than something to trust.
struct DoorbellRing {
    let slots: UnsafeMutableRawPointer
    let count: Int
    let slotBytes: Int
    let head: UnsafeMutableRawPointer
    let tail: UnsafeMutableRawPointer

    func slot(_ index: UInt64) -> UnsafeMutableRawPointer {
        slots + Int(index % UInt64(count)) * slotBytes
    }

    /// Producer: slots free given its own head.
    func free(head produced: UInt64) throws(TransferError) -> Int {
        count - (try filled(head: produced, tail: loom_shm_load_acquire_u64(tail)))
    }

    /// Consumer: records ready given its own tail.
    func ready(tail consumed: UInt64) throws(TransferError) -> Int {
        try filled(head: loom_shm_load_acquire_u64(head), tail: consumed)
    }

    /// Producer: makes records up to `head` visible, after their bytes.
    func publish(head produced: UInt64) { loom_shm_store_release_u64(head, produced) }

    /// Consumer: hands slots up to `tail` back, after reading them.
    func release(tail consumed: UInt64) { loom_shm_store_release_u64(tail, consumed) }

    private func filled(head: UInt64, tail: UInt64) throws(TransferError) -> Int {
        guard tail <= head, head - tail <= UInt64(count) else {
            throw TransferError(.invalidRequest, "doorbell ring indices are impossible (head \(head), tail \(tail), \(count) slots): the other side is broken; the doorbell is closed")
        }
        return Int(head - tail)
    }
}
