/// Byte-level BPE (`tokenizer.ggml.model = gpt2`), as llama.cpp runs it:
/// split special tokens out, pre-tokenize into words, spell each word's bytes
/// with GPT-2's byte characters, then repeatedly merge the adjacent pair with
/// the lowest rank in `tokenizer.ggml.merges` (leftmost on ties).
///
/// Merges work on integer symbol ids rather than strings: every string that
/// can take part in a merge gets an id once, in `init` — the vocabulary's own
/// id, or an id past the vocabulary for merge halves it lacks — so the merge
/// loop is hash lookups on a packed pair of integers.
struct BPETokenizer: Tokenizer {
    let vocabulary: Vocabulary
    private let preTokenizer: PreTokenizer
    private let specials: SpecialTokenSplitter
    private let pieces: PieceTable
    /// Token text (UTF-8 of the GPT-2 spelling) → id.
    private let tokenIDs: ByteStringTable
    /// (left symbol << 32 | right symbol) → (rank << 32 | merged symbol).
    private let merges: PairTable
    /// The symbol each input byte starts as; -1 when no token or merge spells it.
    private let byteSymbols: [Int32]

    init(vocabulary: Vocabulary, preTokenizer: PreTokenizer) throws {
        self.vocabulary = vocabulary
        self.preTokenizer = preTokenizer
        specials = SpecialTokenSplitter(vocabulary)
        pieces = PieceTable(vocabulary)
        let tokenIDs = try Self.tokenTable(vocabulary)
        var extra = ByteStringTable(capacity: 64)
        merges = Self.mergeTable(vocabulary, tokenIDs, &extra)
        byteSymbols = ByteLevel.utf8ForByte.map { tokenIDs.find($0) ?? extra.find($0) ?? -1 }
        self.tokenIDs = tokenIDs
        _ = ScalarClasses.of(0)  // build the class table now, not during the first request
    }

    /// Ranks every merge by its line in `tokenizer.ggml.merges` (first line
    /// wins for a repeated pair). Halves and results missing from the
    /// vocabulary get ids in `extra`, past the vocabulary's.
    private static func mergeTable(_ vocabulary: Vocabulary, _ tokenIDs: ByteStringTable, _ extra: inout ByteStringTable) -> PairTable {
        let vocabularySize = Int32(vocabulary.tokens.count)
        func symbol(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
            if let id = tokenIDs.find(bytes) ?? extra.find(bytes) { return id }
            let fresh = vocabularySize + Int32(extra.count)
            extra.insert(bytes, value: fresh)
            return fresh
        }
        var merges = PairTable(capacity: vocabulary.merges.count)
        var joined: [UInt8] = []
        for (rank, var line) in vocabulary.merges.enumerated() {
            line.withUTF8 { bytes in
                // Split at the first space after the first byte, as llama.cpp does.
                guard let space = bytes.dropFirst().firstIndex(of: 0x20), space + 1 < bytes.count else { return }
                let leftBytes = UnsafeBufferPointer(rebasing: bytes[..<space])
                let rightBytes = UnsafeBufferPointer(rebasing: bytes[(space + 1)...])
                joined.removeAll(keepingCapacity: true)
                joined.append(contentsOf: leftBytes)
                joined.append(contentsOf: rightBytes)
                let left = symbol(leftBytes), right = symbol(rightBytes)
                let merged = joined.withUnsafeBufferPointer(symbol)
                let key = pairKey(left, right)
                merges.insertIfAbsent(key, UInt64(rank) << 32 | UInt64(UInt32(merged)))
            }
        }
        return merges
    }

    /// Token text → id; a repeated token is an error, as in llama.cpp.
    static func tokenTable(_ vocabulary: Vocabulary) throws -> ByteStringTable {
        var table = ByteStringTable(capacity: vocabulary.tokens.count)
        for (index, token) in vocabulary.tokens.enumerated() {
            if let earlier = table.insert(token.utf8, value: Int32(index)) {
                throw TokenizerError(.invalidVocabulary, "duplicate token in vocabulary: '\(token)' has ids \(earlier) and \(index)")
            }
        }
        return table
    }

    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    func piece(_ id: TokenID) -> [UInt8] { pieces.piece(id) }

    func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) throws -> [TokenID] {
        var utf8 = text
        return utf8.withUTF8 { bytes in
            var output: [TokenID] = []
            output.reserveCapacity(bytes.count / 3 + 2)
            if addSpecial, vocabulary.addBOS, let bos = vocabulary.bosID { output.append(bos) }
            var workspace = Workspace()
            for fragment in specials.split(bytes, parseSpecial: parseSpecial) {
                switch fragment {
                case .token(let id): output.append(id)
                case .text(let range): encodeText(UnsafeBufferPointer(rebasing: bytes[range]), &workspace, &output)
                }
            }
            if addSpecial, vocabulary.addEOS, let eos = vocabulary.eosID { output.append(eos) }
            return output
        }
    }

    private func encodeText(_ bytes: UnsafeBufferPointer<UInt8>, _ workspace: inout Workspace, _ output: inout [TokenID]) {
        let text = ScalarText(bytes)
        for word in preTokenizer.split(text) {
            let range = text.offsets[word.lowerBound]..<text.offsets[word.upperBound]
            encodeWord(UnsafeBufferPointer(rebasing: bytes[range]), &workspace, &output)
        }
    }

    /// Scratch arrays reused across the words of one call.
    private struct Workspace {
        var symbols: [Int32] = []
        var lengths: [Int32] = []
        var previous: [Int32] = []
        var next: [Int32] = []
        var queue = MinHeap<Bigram>()
        var spelling: [UInt8] = []
    }

    private struct Bigram: HeapOrdered {
        /// Rank in the high half, left position in the low half: lowest first.
        var order: UInt64
        var right: Int32
        var length: Int32
        var merged: Int32
        var left: Int32 { Int32(truncatingIfNeeded: order & 0xFFFF_FFFF) }
        func precedes(_ other: Bigram) -> Bool { order < other.order }
    }

    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ output: inout [TokenID]) {
        if preTokenizer.ignoreMerges, let id = wholeWordToken(word, &ws) {
            output.append(id)
            return
        }
        let count = word.count
        ws.symbols.removeAll(keepingCapacity: true)
        ws.lengths.removeAll(keepingCapacity: true)
        ws.previous.removeAll(keepingCapacity: true)
        ws.next.removeAll(keepingCapacity: true)
        for (i, byte) in word.enumerated() {
            ws.symbols.append(byteSymbols[Int(byte)])
            ws.lengths.append(1)
            ws.previous.append(Int32(i - 1))
            ws.next.append(i + 1 < count ? Int32(i + 1) : -1)
        }
        ws.queue.removeAll()
        for i in 1..<max(count, 1) { addBigram(Int32(i - 1), Int32(i), &ws) }
        while let bigram = ws.queue.pop() {
            let left = Int(bigram.left), right = Int(bigram.right)
            // Skip pairs made stale by an earlier merge of either side.
            guard ws.lengths[left] > 0, ws.lengths[right] > 0, ws.lengths[left] + ws.lengths[right] == bigram.length else { continue }
            ws.symbols[left] = bigram.merged
            ws.lengths[left] += ws.lengths[right]
            ws.lengths[right] = 0
            ws.next[left] = ws.next[right]
            if ws.next[right] >= 0 { ws.previous[Int(ws.next[right])] = Int32(left) }
            addBigram(ws.previous[left], Int32(left), &ws)
            addBigram(Int32(left), ws.next[left], &ws)
        }
        var i: Int32 = count > 0 ? 0 : -1
        while i >= 0 {
            emit(symbolAt: Int(i), of: word, ws, &output)
            i = ws.next[Int(i)]
        }
    }

    private func addBigram(_ left: Int32, _ right: Int32, _ ws: inout Workspace) {
        guard left >= 0, right >= 0 else { return }
        let a = ws.symbols[Int(left)], b = ws.symbols[Int(right)]
        guard a >= 0, b >= 0, let merge = merges.find(Self.pairKey(a, b)) else { return }
        ws.queue.push(Bigram(
            order: merge & 0xFFFF_FFFF_0000_0000 | UInt64(UInt32(left)), right: right,
            length: ws.lengths[Int(left)] + ws.lengths[Int(right)], merged: Int32(truncatingIfNeeded: merge & 0xFFFF_FFFF)))
    }

    /// A finished symbol is normally a token. One that is not (a merge result
    /// missing from the vocabulary, or a byte no token spells) falls back, as
    /// in llama.cpp, to one-byte tokens for whichever bytes of its GPT-2
    /// spelling have one.
    private func emit(symbolAt position: Int, of word: UnsafeBufferPointer<UInt8>, _ ws: Workspace, _ output: inout [TokenID]) {
        let symbol = ws.symbols[position]
        if symbol >= 0 && Int(symbol) < vocabulary.tokens.count {
            output.append(symbol)
            return
        }
        for byte in word[position..<position + Int(ws.lengths[position])] {
            for spelled in ByteLevel.utf8ForByte[Int(byte)] where spelled < 0x80 {
                if let id = tokenIDs.find([spelled]) { output.append(id) }
            }
        }
    }

    private func wholeWordToken(_ word: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace) -> TokenID? {
        ws.spelling.removeAll(keepingCapacity: true)
        for byte in word { ws.spelling.append(contentsOf: ByteLevel.utf8ForByte[Int(byte)]) }
        return tokenIDs.find(ws.spelling)
    }
}

/// An open-addressing map from packed symbol pairs to packed merges. It is
/// the innermost lookup of BPE; `Dictionary`'s seeded SipHash cost more than
/// the rest of the merge loop, and these keys need no protection from collisions.
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    private static let empty = UInt64.max  // never a key: symbol ids are below 2^31

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: Self.empty, count: size)
        values = Array(repeating: 0, count: size)
        mask = size - 1
    }

    private func slot(for key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    func find(_ key: UInt64) -> UInt64? {
        var index = slot(for: key)
        while true {
            let stored = keys[index]
            if stored == key { return values[index] }
            if stored == Self.empty { return nil }
            index = (index + 1) & mask
        }
    }

    /// Keeps the first value for a key, as llama.cpp's `emplace` does.
    mutating func insertIfAbsent(_ key: UInt64, _ value: UInt64) {
        var index = slot(for: key)
        while keys[index] != Self.empty {
            if keys[index] == key { return }
            index = (index + 1) & mask
        }
        keys[index] = key
        values[index] = value
    }
}
