extension JinjaValue {
    /// Parses JSON into template values, keeping object key order (tool
    /// schemas printed with `tojson` must come out in their original order,
    /// which Foundation's JSONSerialization does not preserve). Integers
    /// without fraction or exponent become `.int`, as Python's json does.
    public init(json: String) throws {
        var parser = JSONParser(bytes: Array(json.utf8))
        parser.skipWhitespace()
        self = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.pos == parser.bytes.count else { throw parser.error("trailing characters") }
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var pos = 0

    func error(_ message: String) -> ChatTemplateError {
        ChatTemplateError(.syntax, "invalid JSON: \(message) at byte \(pos)")
    }

    mutating func skipWhitespace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    mutating func parseValue(depth: Int) throws -> JinjaValue {
        guard depth < 512 else { throw error("nesting too deep") }
        guard pos < bytes.count else { throw error("unexpected end") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .none)
        default: return try parseNumber()
        }
    }

    private mutating func literal(_ word: String, _ value: JinjaValue) throws -> JinjaValue {
        let expected = Array(word.utf8)
        guard bytes.count - pos >= expected.count, Array(bytes[pos..<(pos + expected.count)]) == expected else {
            throw error("unexpected character")
        }
        pos += expected.count
        return value
    }

    private mutating func parseObject(depth: Int) throws -> JinjaValue {
        pos += 1
        var object = JinjaObject()
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try parseString()
            skipWhitespace()
            try expect(":")
            skipWhitespace()
            object[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            if try endOfContainer("}") { return .object(object) }
        }
    }

    private mutating func parseArray(depth: Int) throws -> JinjaValue {
        pos += 1
        var items: [JinjaValue] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if try endOfContainer("]") { return .array(items) }
        }
    }

    /// Consumes `,` (more to come) or the closing bracket (done).
    private mutating func endOfContainer(_ close: Unicode.Scalar) throws -> Bool {
        guard pos < bytes.count else { throw error("unexpected end") }
        if bytes[pos] == UInt8(ascii: ",") {
            pos += 1
            return false
        }
        try expect(close)
        return true
    }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        guard pos < bytes.count, bytes[pos] == UInt8(ascii: c) else { throw error("expected '\(c)'") }
        pos += 1
    }

    private mutating func parseNumber() throws -> JinjaValue {
        let start = pos
        var isInteger = true
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                isInteger = false
            } else if !(c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) && c != UInt8(ascii: "-") && c != UInt8(ascii: "+") {
                break
            }
            pos += 1
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard !text.isEmpty, let d = Double(text) else { throw error("invalid number '\(text)'") }
        return .double(d)
    }

    private mutating func parseString() throws -> String {
        pos += 1
        var out: [UInt8] = []
        while pos < bytes.count {
            let c = bytes[pos]
            pos += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"): out += Array(String(try parseEscape()).utf8)
            default: out.append(c)
            }
        }
        throw error("unterminated string")
    }

    private mutating func parseEscape() throws -> Unicode.Scalar {
        guard pos < bytes.count else { throw error("unterminated escape") }
        let c = bytes[pos]
        pos += 1
        switch c {
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "u"): return try parseUnicodeEscape()
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return Unicode.Scalar(c)
        default: throw error("invalid escape")
        }
    }

    /// `\uXXXX`, joining a UTF-16 surrogate pair into one code point.
    private mutating func parseUnicodeEscape() throws -> Unicode.Scalar {
        let high = try hex4()
        if (0xD800..<0xDC00).contains(high), bytes.count - pos >= 6,
            bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u")
        {
            pos += 2
            let low = try hex4()
            if (0xDC00..<0xE000).contains(low), let scalar = Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)) {
                return scalar
            }
            throw error("invalid surrogate pair")
        }
        return Unicode.Scalar(high) ?? "\u{FFFD}"
    }

    private mutating func hex4() throws -> UInt32 {
        guard bytes.count - pos >= 4, let value = UInt32(String(decoding: bytes[pos..<(pos + 4)], as: UTF8.self), radix: 16)
        else { throw error("invalid \\u escape") }
        pos += 4
        return value
    }
}
