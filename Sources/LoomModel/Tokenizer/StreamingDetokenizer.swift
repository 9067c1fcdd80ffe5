/// Turns tokens into text one at a time without ever printing half a
/// character: a token can end in the middle of a UTF-8 sequence (an emoji is
/// often two or three byte tokens), so the incomplete tail is held back until
/// the tokens that finish it arrive. Bytes that can never become valid UTF-8
/// are printed as U+FFFD at once rather than stalling the stream.
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: any Tokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: any Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// The text that became complete with this token; often "".
    public mutating func append(_ id: TokenID) -> String {
        pending.append(contentsOf: tokenizer.piece(id))
        let keep = Self.incompleteTailLength(pending)
        guard pending.count > keep else { return "" }
        let text = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Whatever is still held back, with an unfinished sequence as U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many trailing bytes form the start of a valid UTF-8 sequence that
    /// more bytes could still complete.
    static func incompleteTailLength(_ bytes: [UInt8]) -> Int {
        guard !bytes.isEmpty else { return 0 }
        // A sequence is at most 4 bytes, so its lead is among the last 3.
        for back in 1...min(3, bytes.count) {
            let lead = bytes[bytes.count - back]
            if lead & 0xC0 == 0x80 { continue }  // continuation byte: keep looking for the lead
            guard let needed = sequenceLength(lead), needed > back else { return 0 }
            let tail = bytes[(bytes.count - back)...]
            return isValidPrefix(tail) ? back : 0
        }
        return 0
    }

    private static func sequenceLength(_ lead: UInt8) -> Int? {
        switch lead {
        case 0x00...0x7F: 1
        case 0xC2...0xDF: 2
        case 0xE0...0xEF: 3
        case 0xF0...0xF4: 4
        default: nil  // C0, C1, F5...FF never start a valid sequence
        }
    }

    /// Whether the bytes after the lead are ones a valid sequence could hold
    /// (the second byte's range depends on the lead, per RFC 3629).
    private static func isValidPrefix(_ tail: ArraySlice<UInt8>) -> Bool {
        let lead = tail[tail.startIndex]
        for (offset, byte) in tail.dropFirst().enumerated() {
            var range: ClosedRange<UInt8> = 0x80...0xBF
            if offset == 0 {
                switch lead {
                case 0xE0: range = 0xA0...0xBF
                case 0xED: range = 0x80...0x9F
                case 0xF0: range = 0x90...0xBF
                case 0xF4: range = 0x80...0x8F
                default: break
                }
            }
            if !range.contains(byte) { return false }
        }
        return true
    }
}
