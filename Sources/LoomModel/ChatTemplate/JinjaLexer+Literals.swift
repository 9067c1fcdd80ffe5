/// Number and string literals, following jinja2's token rules and Python's
/// string escapes.
extension JinjaLexer {
    mutating func lexNumber() throws {
        let start = pos
        let digits = scanDigits()
        // After a dot (`items.0.1`) jinja2 never reads a float, so attribute
        // chains of integers stay subscripts.
        let afterDot = start > 0 && source[start - 1] == "."
        var isFloat = false
        var text = digits
        if !afterDot, peek(0) == ".", let next = peek(1), isDigit(next) {
            pos += 1
            text += "." + scanDigits()
            isFloat = true
        }
        if !afterDot, let e = peek(0), e == "e" || e == "E", let exponent = scanExponent() {
            text += exponent
            isFloat = true
        }
        if isFloat {
            guard let value = Double(text) else { throw syntaxError("invalid number '\(text)'", at: start) }
            emit(.float(value), at: start)
        } else {
            guard let value = Int(text) else { throw syntaxError("integer '\(text)' is too large", at: start) }
            emit(.integer(value), at: start)
        }
    }

    private func peek(_ offset: Int) -> Unicode.Scalar? {
        pos + offset < source.count ? source[pos + offset] : nil
    }

    private func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }

    /// Digits with Python's `_` separators, which are dropped.
    private mutating func scanDigits() -> String {
        var out = ""
        while let c = peek(0) {
            if isDigit(c) {
                out.unicodeScalars.append(c)
            } else if c == "_", let next = peek(1), isDigit(next), !out.isEmpty {
                // separator: skip it
            } else {
                break
            }
            pos += 1
        }
        return out
    }

    /// `e+12` style exponent, or nil (consuming nothing) if what follows the
    /// `e` is not one, so `1else` style input is left for the name rule.
    private mutating func scanExponent() -> String? {
        var offset = 1
        var sign = ""
        if let s = peek(1), s == "+" || s == "-" { sign = String(s); offset = 2 }
        guard let first = peek(offset), isDigit(first) else { return nil }
        pos += offset
        return "e" + sign + scanDigits()
    }

    mutating func lexString() throws {
        let start = pos
        let quote = source[pos]
        pos += 1
        var raw: [Unicode.Scalar] = []
        while pos < source.count, source[pos] != quote {
            if source[pos] == "\\", pos + 1 < source.count {
                raw.append(source[pos])
                pos += 1
            }
            raw.append(source[pos])
            pos += 1
        }
        guard pos < source.count else { throw syntaxError("unterminated string literal", at: start) }
        pos += 1
        emit(.string(try unescape(raw, at: start)), at: start)
    }

    /// Python's escape sequences; unknown ones keep their backslash.
    private func unescape(_ raw: [Unicode.Scalar], at start: Int) throws -> String {
        var out = String.UnicodeScalarView()
        var i = 0
        while i < raw.count {
            guard raw[i] == "\\", i + 1 < raw.count else {
                out.append(raw[i])
                i += 1
                continue
            }
            let c = raw[i + 1]
            i += 2
            switch c {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\", "'", "\"": out.append(c)
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": break
            case "x", "u", "U":
                let width = c == "x" ? 2 : (c == "u" ? 4 : 8)
                out.append(try hexEscape(raw, &i, width: width, at: start))
            case "0"..."7":
                out.append(octalEscape(raw, &i, first: c))
            default:
                out.append("\\")
                out.append(c)
            }
        }
        return String(out)
    }

    private func hexEscape(_ raw: [Unicode.Scalar], _ i: inout Int, width: Int, at start: Int) throws -> Unicode.Scalar {
        guard i + width <= raw.count,
            let value = UInt32(String(scalars: raw[i..<(i + width)]), radix: 16),
            let scalar = Unicode.Scalar(value)
        else {
            throw syntaxError("invalid \\x/\\u escape in string literal", at: start)
        }
        i += width
        return scalar
    }

    private func octalEscape(_ raw: [Unicode.Scalar], _ i: inout Int, first: Unicode.Scalar) -> Unicode.Scalar {
        var value = first.value - 48
        var count = 1
        while count < 3, i < raw.count, raw[i] >= "0", raw[i] <= "7" {
            value = value * 8 + raw[i].value - 48
            i += 1
            count += 1
        }
        return Unicode.Scalar(value) ?? "\u{FFFD}"
    }
}
