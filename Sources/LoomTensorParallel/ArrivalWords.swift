import CLoomShm
import Glibc

/// The arrival words of one region: `arrived[s]` counts the messages rank
/// `s` has finished writing into it. A writer stores the count with release
/// order after its bytes, so a reader that sees the count sees the bytes;
/// the reader spins briefly (a decode step's all-reduce is a few µs away),
/// then sleeps on the word with a futex, having said so in `sleeping`, and
/// only then does a writer pay for a wake-up.
struct ArrivalWords {
    let base: UnsafeMutableRawPointer
    let layout: GroupRegionLayout

    func word(_ source: Int) -> UnsafeMutableRawPointer { base + layout.arrivedOffset(from: source) }
    var sleeping: UnsafeMutableRawPointer { base + layout.sleepingOffset }

    /// As the writer: message `count` from `source` is in place.
    func post(from source: Int, count: UInt32) {
        loom_shm_store_release_u32(word(source), count)
        loom_shm_fence()
        if loom_shm_load_acquire_u32(sleeping) != 0 { _ = loom_shm_futex_wake_all(word(source)) }
    }

    func arrived(from source: Int, count: UInt32) -> Bool {
        Int32(bitPattern: loom_shm_load_acquire_u32(word(source)) &- count) >= 0
    }

    /// As the owner: waits until `source` has posted message `count`.
    /// `spin` bounds the busy wait; `check` runs every `checkEvery` of
    /// sleep and throws to give up (a dead peer, a missed deadline).
    func wait(from source: Int, count: UInt32, spin: Duration, checkEvery: Duration = .milliseconds(50), check: () throws -> Void) rethrows {
        let word = word(source)
        func arrived() -> Bool { Int32(bitPattern: loom_shm_load_acquire_u32(word) &- count) >= 0 }
        if arrived() { return }
        let clock = ContinuousClock()
        let spinUntil = clock.now + spin
        var polls = 0
        while true {
            if arrived() { return }
            polls += 1
            if polls & 63 == 0, clock.now >= spinUntil { break }
        }
        defer { loom_shm_store_release_u32(sleeping, 0) }
        while true {
            loom_shm_store_release_u32(sleeping, 1)
            loom_shm_fence()
            let seen = loom_shm_load_acquire_u32(word)
            if Int32(bitPattern: seen &- count) >= 0 { return }
            let status = loom_shm_futex_wait(word, seen, Int64(checkEvery.components.attoseconds / 1_000_000_000 + checkEvery.components.seconds * 1_000_000_000))
            if status == ETIMEDOUT { try check() }
        }
    }
}
