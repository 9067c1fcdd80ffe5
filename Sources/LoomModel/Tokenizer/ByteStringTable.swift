/// A hash table from byte strings to token ids, built once per tokenizer.
///
/// Keys are compared as raw UTF-8 bytes, never as Swift `String`s: `String`
/// equality is canonical equivalence, so "é" and "e\u{301}" — two distinct
/// tokens in SentencePiece vocabularies — would collide in a `[String: Int]`.
/// Lookups take a slice of an existing buffer, so the hot loops of BPE and
/// SentencePiece never allocate a key.
struct ByteStringTable: Sendable {
    private struct Entry: Sendable {
        var start: Int32
        var length: Int32
        var value: Int32
    }

    private var bytes: [UInt8] = []
    private var entries: [Entry] = []
    /// Open addressing. A slot holds the key's 32-bit hash in its high half and
    /// entry index + 1 in its low half (0 = empty), so probing past other keys
    /// rarely touches `entries` or `bytes`: vocabulary tables outgrow the cache.
    private var slots: [UInt64]
    private var mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: 0, count: size)
        mask = size - 1
    }

    var count: Int { entries.count }

    /// Adds `key → value`; returns the existing value instead if the key is
    /// already present (the first insertion wins, as in llama.cpp's maps).
    @discardableResult
    mutating func insert(_ key: some Collection<UInt8>, value: Int32) -> Int32? {
        let keyBytes = Array(key)
        if let existing = find(keyBytes) { return existing }
        if entries.count * 2 >= slots.count { grow() }
        entries.append(Entry(start: Int32(bytes.count), length: Int32(keyBytes.count), value: value))
        bytes.append(contentsOf: keyBytes)
        place(entries.count - 1, hash: keyBytes.withUnsafeBufferPointer(Self.hash))
        return nil
    }

    /// No closures here: a closure over `self` can copy the struct, and array
    /// retains per lookup would cost more than the lookup itself.
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let hash = Self.hash(key)
        let tag = UInt64(hash) << 32
        var slot = Int(hash) & mask
        while true {
            let word = slots[slot]
            if word == 0 { return nil }
            if word & 0xFFFF_FFFF_0000_0000 == tag {
                let entry = entries[Int(word & 0xFFFF_FFFF) - 1]
                if Int(entry.length) == key.count && matches(key, at: Int(entry.start)) { return entry.value }
            }
            slot = (slot + 1) & mask
        }
    }

    func find(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { find($0) }
    }

    private func matches(_ key: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        for i in 0..<key.count where bytes[start + i] != key[i] { return false }
        return true
    }

    /// FNV-1a: short keys, no allocation, good enough spread for vocabularies.
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    private mutating func place(_ entry: Int, hash: UInt32) {
        var slot = Int(hash) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = UInt64(hash) << 32 | UInt64(entry + 1)
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        for word in old where word != 0 {
            place(Int(word & 0xFFFF_FFFF) - 1, hash: UInt32(word >> 32))
        }
    }
}
