/// A byte-at-a-time recognizer of JSON prefixes: `feed` fails as soon as the
/// bytes so far cannot begin a JSON object. A value type, so testing a
/// candidate token is copying the state and feeding its bytes.
struct JSONPrefix: Sendable, Equatable {
    private enum Mode: Equatable {
        case start                      // before the top-level '{'
        case value                      // a value must come
        case valueOrClose               // after '[': a value or ']'
        case keyOrClose                 // after '{': a key or '}'
        case key                        // after ',' in an object
        case colon
        case afterValue                 // ',' or a closer
        case string(isKey: Bool)
        case escape(isKey: Bool)
        case unicode(isKey: Bool, remaining: Int)
        case number(NumberPart)
        case literal([UInt8], Int)
        case done
    }

    private enum NumberPart: Equatable {
        case sign, zero, integer, point, fraction, exponent, exponentSign, exponentDigits
        /// Whether the number may end here.
        var isComplete: Bool { self == .zero || self == .integer || self == .fraction || self == .exponentDigits }
    }

    private var mode = Mode.start
    private var stack: [UInt8] = []
    private var whitespaceRun = 0
    /// Consecutive whitespace allowed between tokens: enough for indentation,
    /// not enough for a model to loop on spaces forever.
    static let maxWhitespaceRun = 16

    var isComplete: Bool { mode == .done }

    /// Consumes one byte; false (leaving the state unspecified) if no JSON
    /// object can continue this way.
    mutating func feed(_ byte: UInt8) -> Bool {
        switch mode {
        case .string(let isKey): return feedString(byte, isKey: isKey)
        case .escape(let isKey):
            guard Array("\"\\/bfnrtu".utf8).contains(byte) else { return false }
            mode = byte == UInt8(ascii: "u") ? .unicode(isKey: isKey, remaining: 4) : .string(isKey: isKey)
            return true
        case .unicode(let isKey, let remaining):
            guard byte.isHexDigit else { return false }
            mode = remaining == 1 ? .string(isKey: isKey) : .unicode(isKey: isKey, remaining: remaining - 1)
            return true
        case .literal(let word, let index):
            guard word[index] == byte else { return false }
            mode = index + 1 == word.count ? .afterValue : .literal(word, index + 1)
            if mode == .afterValue { settle() }
            return true
        case .number(let part):
            if let next = Self.advance(part, byte) {
                mode = .number(next)
                return true
            }
            guard part.isComplete else { return false }
            mode = .afterValue
            return feed(byte)
        case .done:
            return false
        default:
            return feedStructural(byte)
        }
    }

    private mutating func feedStructural(_ byte: UInt8) -> Bool {
        if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
            whitespaceRun += 1
            return whitespaceRun <= Self.maxWhitespaceRun
        }
        whitespaceRun = 0
        switch (mode, byte) {
        case (.start, UInt8(ascii: "{")):
            stack.append(byte)
            mode = .keyOrClose
        case (.keyOrClose, UInt8(ascii: "\"")), (.key, UInt8(ascii: "\"")):
            mode = .string(isKey: true)
        case (.colon, UInt8(ascii: ":")):
            mode = .value
        case (.keyOrClose, UInt8(ascii: "}")), (.valueOrClose, UInt8(ascii: "]")):
            stack.removeLast()
            mode = .afterValue
            settle()
        case (.value, _), (.valueOrClose, _):
            return startValue(byte)
        case (.afterValue, UInt8(ascii: ",")):
            mode = stack.last == UInt8(ascii: "{") ? .key : .value
        case (.afterValue, UInt8(ascii: "}")), (.afterValue, UInt8(ascii: "]")):
            guard stack.last == (byte == UInt8(ascii: "}") ? UInt8(ascii: "{") : UInt8(ascii: "[")) else { return false }
            stack.removeLast()
            settle()
        default:
            return false
        }
        return true
    }

    private mutating func startValue(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "{"): stack.append(byte); mode = .keyOrClose
        case UInt8(ascii: "["): stack.append(byte); mode = .valueOrClose
        case UInt8(ascii: "\""): mode = .string(isKey: false)
        case UInt8(ascii: "t"): mode = .literal(Array("true".utf8), 1)
        case UInt8(ascii: "f"): mode = .literal(Array("false".utf8), 1)
        case UInt8(ascii: "n"): mode = .literal(Array("null".utf8), 1)
        case UInt8(ascii: "-"): mode = .number(.sign)
        case UInt8(ascii: "0"): mode = .number(.zero)
        case UInt8(ascii: "1")...UInt8(ascii: "9"): mode = .number(.integer)
        default: return false
        }
        return true
    }

    private mutating func feedString(_ byte: UInt8, isKey: Bool) -> Bool {
        switch byte {
        case UInt8(ascii: "\""):
            mode = isKey ? .colon : .afterValue
            if !isKey { settle() }
        case UInt8(ascii: "\\"): mode = .escape(isKey: isKey)
        case 0..<0x20: return false  // control characters must be escaped
        default: break
        }
        return true
    }

    /// After a value: with nothing left open, the object is complete.
    private mutating func settle() {
        if stack.isEmpty { mode = .done }
    }

    private static func advance(_ part: NumberPart, _ byte: UInt8) -> NumberPart? {
        let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        switch part {
        case .sign: return byte == UInt8(ascii: "0") ? .zero : digit ? .integer : nil
        case .zero: return byte == UInt8(ascii: ".") ? .point : (byte | 0x20) == UInt8(ascii: "e") ? .exponent : nil
        case .integer: return digit ? .integer : byte == UInt8(ascii: ".") ? .point : (byte | 0x20) == UInt8(ascii: "e") ? .exponent : nil
        case .point: return digit ? .fraction : nil
        case .fraction: return digit ? .fraction : (byte | 0x20) == UInt8(ascii: "e") ? .exponent : nil
        case .exponent: return digit ? .exponentDigits : (byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")) ? .exponentSign : nil
        case .exponentSign, .exponentDigits: return digit ? .exponentDigits : nil
        }
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self | 0x20)
    }
}
