/// A piece of the input after special tokens are cut out: either a special
/// token's id, or a byte range of text still to be tokenized.
enum Fragment: Equatable {
    case token(TokenID)
    case text(Range<Int>)
}

/// Cuts control, user-defined and unknown tokens out of text before the
/// tokenizer proper sees it (llama.cpp's `tokenizer_st_partition`).
///
/// Tokens are tried longest first, each over every text fragment left by the
/// ones before it, so "<|im_start|>" wins over a shorter token inside it.
struct SpecialTokenSplitter: Sendable {
    private struct Entry: Sendable {
        var id: TokenID
        var bytes: [UInt8]
        /// Control and unknown tokens are only matched when asked to parse
        /// special tokens; user-defined ones always are.
        var needsParseSpecial: Bool
        var stripLeft: Bool
        var stripRight: Bool
    }

    private let entries: [Entry]
    /// Bytes some special token starts with. Only text positions holding one
    /// are tried, so cost grows with those positions, not with text length
    /// times the number of special tokens (Llama 3 has 256).
    private let isFirstByte: [Bool]

    init(_ vocabulary: Vocabulary) {
        var entries: [Entry] = []
        for (index, type) in vocabulary.types.enumerated() where [.control, .userDefined, .unknown].contains(type) {
            let id = TokenID(index)
            entries.append(Entry(
                id: id, bytes: Array(vocabulary.tokens[index].utf8), needsParseSpecial: type != .userDefined,
                stripLeft: vocabulary.leftStripIDs.contains(id), stripRight: vocabulary.rightStripIDs.contains(id)))
        }
        // Longest first; equal lengths by id, where llama.cpp's unstable sort leaves the order unspecified.
        entries.sort { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        self.entries = entries.filter { !$0.bytes.isEmpty }
        var isFirstByte = [Bool](repeating: false, count: 256)
        for entry in self.entries { isFirstByte[Int(entry.bytes[0])] = true }
        self.isFirstByte = isFirstByte
    }

    func split(_ text: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = text.isEmpty ? [] : [.text(0..<text.count)]
        let candidates = text.indices.filter { isFirstByte[Int(text[$0])] }
        guard !candidates.isEmpty else { return fragments }
        for entry in entries where parseSpecial || !entry.needsParseSpecial {
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count + 2)
            for fragment in fragments {
                guard case .text(let range) = fragment else {
                    next.append(fragment)
                    continue
                }
                cut(entry, from: range, of: text, candidates: candidates, into: &next)
            }
            fragments = next
        }
        return fragments
    }

    /// Replaces every occurrence of the entry's text in `range` by its id,
    /// leftmost first, as `std::string::find` from the end of the last match.
    private func cut(
        _ entry: Entry, from range: Range<Int>, of text: UnsafeBufferPointer<UInt8>, candidates: [Int],
        into out: inout [Fragment]
    ) {
        var start = range.lowerBound
        let end = range.upperBound
        var next = Self.firstIndex(in: candidates, notBelow: start)
        while next < candidates.count, candidates[next] + entry.bytes.count <= end {
            let match = candidates[next]
            next += 1
            guard match >= start, Self.occurs(entry.bytes, in: text, at: match) else { continue }
            var leftEnd = match
            if entry.stripLeft {
                while leftEnd > start && Self.isSpace(text[leftEnd - 1]) { leftEnd -= 1 }
            }
            if leftEnd > start { out.append(.text(start..<leftEnd)) }
            out.append(.token(entry.id))
            start = match + entry.bytes.count
            if entry.stripRight {
                while start < end && Self.isSpace(text[start]) { start += 1 }
            }
        }
        if start < end { out.append(.text(start..<end)) }
    }

    /// Binary search: the first candidate position at or after `start`.
    private static func firstIndex(in candidates: [Int], notBelow start: Int) -> Int {
        var low = 0, high = candidates.count
        while low < high {
            let middle = (low + high) / 2
            if candidates[middle] < start { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private static func occurs(_ needle: [UInt8], in text: UnsafeBufferPointer<UInt8>, at position: Int) -> Bool {
        for k in 0..<needle.count where text[position + k] != needle[k] { return false }
        return true
    }

    /// C `isspace` in the "C" locale, which llama.cpp uses for stripping.
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}
