/// Turns text into token ids and back, exactly as llama.cpp does for the same vocabulary.
public protocol Tokenizer: Sendable {
    var vocabulary: Vocabulary { get }
    /// Entry points that turn a request into a prompt call `encode(_:as:)`
    /// with a `PromptTokenization` instead, so they cannot disagree.
    /// - Parameters:
    ///   - addSpecial: add BOS/EOS where the vocabulary asks for them.
    ///   - parseSpecial: control tokens written in the text (`<|im_start|>`)
    ///     become their ids; otherwise they are tokenized as plain text.
    ///     User-defined tokens are always matched, as in llama.cpp.
    func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) throws -> [TokenID]
    /// The raw bytes a token stands for. A piece can be part of a UTF-8
    /// sequence; use `StreamingDetokenizer` to print tokens as they come.
    func piece(_ id: TokenID) -> [UInt8]
    /// The text of a whole sequence; control tokens are rendered as their text.
    func decode(_ ids: [TokenID]) -> String
}

extension Tokenizer {
    public func decode(_ ids: [TokenID]) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes.append(contentsOf: piece(id)) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

public enum Tokenizers {
    /// Builds the tokenizer the vocabulary's model and pre-tokenizer call for.
    /// Lookup tables are built here, once, so encoding allocates little.
    public static func make(_ vocabulary: Vocabulary) throws -> any Tokenizer {
        try validate(vocabulary)
        switch vocabulary.model {
        case .bpe:
            guard let preTokenizer = PreTokenizer.byName[vocabulary.preTokenizer] else {
                throw TokenizerError(
                    .unsupportedPreTokenizer,
                    "tokenizer.ggml.pre '\(vocabulary.preTokenizer)' is not supported; Loom implements: \(PreTokenizer.supportedNames.joined(separator: ", "))")
            }
            return try BPETokenizer(vocabulary: vocabulary, preTokenizer: preTokenizer)
        case .sentencePiece:
            return try SentencePieceTokenizer(vocabulary: vocabulary)
        }
    }
}

extension Tokenizers {
    /// The fields of a `Vocabulary` are public and mutable; tables built from
    /// them index one by the other, so they must still agree.
    static func validate(_ vocabulary: Vocabulary) throws {
        let count = vocabulary.tokens.count
        guard vocabulary.types.count == count, vocabulary.scores.count == count else {
            throw TokenizerError(
                .invalidVocabulary,
                "the vocabulary has \(count) tokens but \(vocabulary.types.count) types and \(vocabulary.scores.count) scores; they must match one to one")
        }
        let named: [(String, TokenID?)] = [("bos", vocabulary.bosID), ("eos", vocabulary.eosID), ("unknown", vocabulary.unknownID), ("eot", vocabulary.eotID)]
        for (name, id) in named {
            if let id, id < 0 || Int(id) >= count {
                throw TokenizerError(.invalidVocabulary, "the \(name) token id \(id) is outside the vocabulary of \(count) tokens")
            }
        }
    }
}

/// Every token's piece, computed once (llama.cpp caches them the same way).
struct PieceTable: Sendable {
    private var bytes: [UInt8] = []
    private var starts: [Int] = [0]

    init(_ vocabulary: Vocabulary) {
        for (index, token) in vocabulary.tokens.enumerated() {
            bytes.append(contentsOf: Self.piece(token, vocabulary.types[index], vocabulary.model))
            starts.append(bytes.count)
        }
    }

    func piece(_ id: TokenID) -> [UInt8] {
        guard id >= 0, Int(id) + 1 < starts.count else { return [] }
        return Array(bytes[starts[Int(id)]..<starts[Int(id) + 1]])
    }

    private static func piece(_ token: String, _ type: Vocabulary.TokenType, _ model: Vocabulary.Model) -> [UInt8] {
        switch type {
        case .control, .unknown, .userDefined:
            return Array(token.utf8)
        case .byte:
            return [byteValue(of: token)]
        case .undefined, .unused:
            return []  // llama.cpp prints nothing for these
        case .normal:
            return model == .bpe ? byteLevelDecode(token) : unescapeSpaces(token)
        }
    }

    /// `<0xXX>` → XX, read like llama.cpp's strtol on characters 3 and 4.
    private static func byteValue(of token: String) -> UInt8 {
        var value: UInt8 = 0
        for byte in Array(token.utf8).dropFirst(3).prefix(2) {
            guard let digit = hexDigit(byte) else { break }
            value = value << 4 | digit
        }
        return value
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    /// Maps GPT-2 byte characters back to bytes. A character outside the map
    /// is written out the way llama.cpp does, so output stays comparable.
    private static func byteLevelDecode(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        for scalar in token.unicodeScalars {
            if let byte = ByteLevel.byte(for: scalar) {
                out.append(byte)
            } else {
                let hex = String(scalar).utf8.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
                out.append(contentsOf: "[UNK_BYTE_0x\(hex)\(token)]".utf8)
            }
        }
        return out
    }

    /// SentencePiece writes spaces as U+2581 "▁".
    static func unescapeSpaces(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        let utf8 = Array(token.utf8)
        var i = 0
        while i < utf8.count {
            if i + 2 < utf8.count, utf8[i] == 0xE2, utf8[i + 1] == 0x96, utf8[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(utf8[i])
                i += 1
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Orders heap elements: `a.precedes(b)` when `a` must come out first.
protocol HeapOrdered {
    func precedes(_ other: Self) -> Bool
}

/// A binary heap; a protocol rather than a closure so the comparison inlines
/// in the merge loops.
struct MinHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        items.append(element)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var best = parent
            if left < items.count && items[left].precedes(items[best]) { best = left }
            if right < items.count && items[right].precedes(items[best]) { best = right }
            if best == parent { break }
            items.swapAt(parent, best)
            parent = best
        }
        return top
    }
}
