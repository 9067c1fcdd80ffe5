/// A hash table from byte strings to token ids, built once per tokenizer.
///
/// Keys are compared as raw UTF-8 bytes, never as Swift `String`s: `String`
/// equality is canonical equivalence, so "é" and "e\u{301}" — two distinct
/// tokens in SentencePiece vocabularies — would collide in a `[String: Int]`.
/// Lookups take a slice of an existing buffer, so the hot loops of BPE and
/// SentencePiece never allocate a key.
struct ByteStringTable: Sendable {
    private var bytes: [UInt8] = []
    /// `starts[i]..<starts[i + 1]` is entry i's key inside `bytes`.
    private var starts: [Int] = [0]
    private var values: [Int32] = []
    /// Open addressing: each slot holds an entry index, or -1 when empty.
    private var slots: [Int32]
    private var mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        mask = size - 1
    }

    var count: Int { values.count }

    /// Adds `key → value`; returns the existing value instead if the key is
    /// already present (the first insertion wins, as in llama.cpp's maps).
    @discardableResult
    mutating func insert(_ key: some Collection<UInt8>, value: Int32) -> Int32? {
        let keyBytes = Array(key)
        if let existing = keyBytes.withUnsafeBufferPointer({ find($0) }) { return existing }
        if values.count * 2 >= slots.count { grow() }
        let entry = Int32(values.count)
        bytes.append(contentsOf: keyBytes)
        starts.append(bytes.count)
        values.append(value)
        place(entry, hash: keyBytes.withUnsafeBufferPointer(Self.hash))
        return nil
    }

    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        var slot = Self.hash(key) & mask
        return bytes.withUnsafeBufferPointer { stored in
            while true {
                let entry = Int(slots[slot])
                if entry < 0 { return nil }
                let start = starts[entry], end = starts[entry + 1]
                if end - start == key.count, Self.equal(stored, start, key) { return values[entry] }
                slot = (slot + 1) & mask
            }
        }
    }

    func find(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { find($0) }
    }

    private static func equal(_ stored: UnsafeBufferPointer<UInt8>, _ start: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        for i in 0..<key.count where stored[start + i] != key[i] { return false }
        return true
    }

    /// FNV-1a: short keys, no allocation, good enough spread for vocabularies.
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    private mutating func place(_ entry: Int32, hash: Int) {
        var slot = hash & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = entry
    }

    private mutating func grow() {
        slots = Array(repeating: -1, count: slots.count * 2)
        mask = slots.count - 1
        for entry in 0..<values.count {
            let h = bytes.withUnsafeBufferPointer {
                Self.hash(UnsafeBufferPointer(rebasing: $0[starts[entry]..<starts[entry + 1]]))
            }
            place(Int32(entry), hash: h)
        }
    }
}
