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
    }

    func split(_ text: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = text.isEmpty ? [] : [.text(0..<text.count)]
        for entry in entries where parseSpecial || !entry.needsParseSpecial {
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count + 2)
            for fragment in fragments {
                guard case .text(let range) = fragment else {
                    next.append(fragment)
                    continue
                }
                cut(entry, from: range, of: text, into: &next)
            }
            fragments = next
        }
        return fragments
    }

    /// Replaces every occurrence of the entry's text in `range` by its id.
    private func cut(_ entry: Entry, from range: Range<Int>, of text: UnsafeBufferPointer<UInt8>, into out: inout [Fragment]) {
        var start = range.lowerBound
        let end = range.upperBound
        while let match = Self.find(entry.bytes, in: text, start..<end) {
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

    private static func find(_ needle: [UInt8], in text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
        guard needle.count <= range.count else { return nil }
        let first = needle[0]
        var i = range.lowerBound
        let last = range.upperBound - needle.count
        while i <= last {
            if text[i] == first {
                var k = 1
                while k < needle.count && text[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// C `isspace` in the "C" locale, which llama.cpp uses for stripping.
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}
