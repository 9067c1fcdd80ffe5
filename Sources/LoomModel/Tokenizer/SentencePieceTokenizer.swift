/// SentencePiece BPE (`tokenizer.ggml.model = llama`), as llama.cpp runs it:
/// spaces become "▁" (with one prepended at the start and after each special
/// token when `add_space_prefix` is set), the text starts as one symbol per
/// character, and the adjacent pair whose concatenation is the highest-scoring
/// token merges first (leftmost on ties). Characters left without a token fall
/// back to byte tokens `<0xXX>`.
struct SentencePieceTokenizer: Tokenizer {
    let vocabulary: Vocabulary
    private let specials: SpecialTokenSplitter
    private let pieces: PieceTable
    private let tokenIDs: ByteStringTable
    /// The byte-fallback token for each byte, or -1.
    private let byteTokens: [Int32]

    init(vocabulary: Vocabulary) throws {
        self.vocabulary = vocabulary
        specials = SpecialTokenSplitter(vocabulary)
        pieces = PieceTable(vocabulary)
        let tokenIDs = try BPETokenizer.tokenTable(vocabulary)
        self.tokenIDs = tokenIDs
        byteTokens = (0..<256).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            let name = "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
            // Some vocabularies spell an ASCII byte as itself instead.
            return tokenIDs.find(Array(name.utf8)) ?? (byte < 0x80 ? tokenIDs.find([UInt8(byte)]) : nil) ?? -1
        }
    }

    func piece(_ id: TokenID) -> [UInt8] { pieces.piece(id) }

    func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) throws -> [TokenID] {
        var utf8 = text
        return try utf8.withUTF8 { bytes in
            var output: [TokenID] = []
            output.reserveCapacity(bytes.count / 2 + 2)
            if addSpecial, vocabulary.addBOS, let bos = vocabulary.bosID { output.append(bos) }
            var previousWasSpecial = true
            var escaped: [UInt8] = []
            for fragment in specials.split(bytes, parseSpecial: parseSpecial) {
                switch fragment {
                case .token(let id):
                    output.append(id)
                    previousWasSpecial = true
                case .text(let range):
                    escaped.removeAll(keepingCapacity: true)
                    if vocabulary.addSpacePrefix && previousWasSpecial { escaped.append(contentsOf: Self.escapedSpace) }
                    for byte in bytes[range] {
                        if byte == 0x20 { escaped.append(contentsOf: Self.escapedSpace) } else { escaped.append(byte) }
                    }
                    try escaped.withUnsafeBufferPointer { try encodeEscaped($0, &output) }
                    previousWasSpecial = false
                }
            }
            if addSpecial, vocabulary.addEOS, let eos = vocabulary.eosID { output.append(eos) }
            return output
        }
    }

    private static let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]  // "▁"

    private struct Bigram: HeapOrdered {
        var score: Float
        var left: Int32
        var right: Int32
        var length: Int32
        /// Highest score first; the leftmost pair among equals.
        func precedes(_ other: Bigram) -> Bool {
            score > other.score || (score == other.score && left < other.left)
        }
    }

    private func encodeEscaped(_ text: UnsafeBufferPointer<UInt8>, _ output: inout [TokenID]) throws {
        var starts: [Int32] = [], lengths: [Int32] = [], previous: [Int32] = [], next: [Int32] = []
        var offset = 0
        while offset < text.count {
            let length = min(Self.utf8Length(text[offset]), text.count - offset)
            previous.append(Int32(starts.count) - 1)
            starts.append(Int32(offset))
            lengths.append(Int32(length))
            offset += length
            next.append(offset == text.count ? -1 : Int32(starts.count))
        }
        var queue = MinHeap<Bigram>()
        func tryAdd(_ left: Int32, _ right: Int32) {
            guard left >= 0, right >= 0 else { return }
            let start = Int(starts[Int(left)]), length = lengths[Int(left)] + lengths[Int(right)]
            guard let id = tokenIDs.find(UnsafeBufferPointer(rebasing: text[start..<start + Int(length)])) else { return }
            queue.push(Bigram(score: vocabulary.scores[Int(id)], left: left, right: right, length: length))
        }
        for i in 1..<max(starts.count, 1) { tryAdd(Int32(i - 1), Int32(i)) }
        while let bigram = queue.pop() {
            let left = Int(bigram.left), right = Int(bigram.right)
            guard lengths[left] > 0, lengths[right] > 0, lengths[left] + lengths[right] == bigram.length else { continue }
            lengths[left] += lengths[right]
            lengths[right] = 0
            next[left] = next[right]
            if next[right] >= 0 { previous[Int(next[right])] = Int32(left) }
            tryAdd(previous[left], Int32(left))
            tryAdd(Int32(left), next[left])
        }
        var i: Int32 = starts.isEmpty ? -1 : 0
        while i >= 0 {
            let start = Int(starts[Int(i)])
            let symbol = UnsafeBufferPointer(rebasing: text[start..<start + Int(lengths[Int(i)])])
            if let id = tokenIDs.find(symbol) {
                output.append(id)
            } else {
                for byte in symbol { output.append(try byteToken(byte)) }
            }
            i = next[Int(i)]
        }
    }

    private func byteToken(_ byte: UInt8) throws -> TokenID {
        let id = byteTokens[Int(byte)]
        if id >= 0 { return id }
        throw TokenizerError(
            .missingToken,
            "the vocabulary has no byte-fallback token <0x\(String(byte, radix: 16, uppercase: true))> for a character it cannot spell")
    }

    /// Sequence length from the lead byte's high nibble, as llama.cpp's `unicode_len_utf8`.
    private static func utf8Length(_ lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: 2
        case 0xE: 3
        case 0xF: 4
        default: 1
        }
    }
}
