/// Python's `str()`, `repr()` and `json.dumps`, reproduced because templates
/// print values with them and the rendered prompt must match transformers'
/// byte for byte.
extension JinjaValue {
    /// Python `str()`: what `{{ value }}`, `~` and the `string` filter produce.
    var pythonString: String {
        switch self {
        case .string(let s): return s
        case .undefined: return ""
        default: return pythonRepr
        }
    }

    /// Python `repr()`, used for values nested inside printed lists and dicts.
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return pythonFloatRepr(d)
        case .string(let s): return pythonStringRepr(s)
        case .array(let items):
            return "[" + items.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .object(let object):
            let body = object.pairs.map { $0.key.value.pythonRepr + ": " + $0.value.pythonRepr }
            return "{" + body.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .callable(let c): return "<function \(c.name)>"
        }
    }
}

/// Swift's shortest round-trip `description` already agrees with Python's
/// `float.__repr__` (`1e+16`, `1e-05`, `100.0`); only the non-finite
/// spellings differ.
func pythonFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    return d.description
}

func pythonStringRepr(_ s: String) -> String {
    let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
    var out = String(quote)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(scalar) == quote {
                out += "\\" + String(quote)
            } else if isPythonPrintable(scalar) {
                out.unicodeScalars.append(scalar)
            } else {
                out += pythonEscape(scalar)
            }
        }
    }
    out.append(quote)
    return out
}

private func pythonEscape(_ scalar: Unicode.Scalar) -> String {
    let hex = String(scalar.value, radix: 16)
    if scalar.value < 0x100 { return "\\x" + String(repeating: "0", count: 2 - hex.count) + hex }
    if scalar.value < 0x10000 { return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex }
    return "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
}

/// Python's `str.isprintable` for one character: everything except control,
/// format, surrogate, private-use, unassigned and separator characters
/// (but the ordinary space is printable).
private func isPythonPrintable(_ scalar: Unicode.Scalar) -> Bool {
    if scalar == " " { return true }
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned,
        .spaceSeparator, .lineSeparator, .paragraphSeparator:
        return false
    default:
        return true
    }
}

/// The options of transformers' `tojson` filter, which is `json.dumps` with
/// `ensure_ascii=False` (unlike jinja2's own, it neither sorts keys nor
/// HTML-escapes).
struct JSONOptions {
    var ensureASCII = false
    var indent: String?
    var itemSeparator: String?
    var keySeparator = ": "
    var sortKeys = false
}

extension JinjaValue {
    func json(_ options: JSONOptions) throws -> String {
        var out = ""
        try writeJSON(into: &out, options, depth: 0)
        return out
    }

    private func writeJSON(into out: inout String, _ options: JSONOptions, depth: Int) throws {
        switch self {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else {
                out += d.description
            }
        case .string(let s): out += jsonString(s, ensureASCII: options.ensureASCII)
        case .array(let items):
            try writeJSONContainer(into: &out, options, depth: depth, open: "[", close: "]", items.map { (nil, $0) })
        case .object(let object):
            var pairs = object.pairs
            if options.sortKeys {
                // Python sorts the keys themselves, so mixed key types fail.
                try pairs.sort { try JinjaOperators.less($0.key.value, $1.key.value) }
            }
            try writeJSONContainer(
                into: &out, options, depth: depth, open: "{", close: "}", pairs.map { (jsonKey($0.key), $0.value) })
        case .undefined, .namespace, .callable:
            throw ChatTemplateError(.type, "Object of type \(typeName) is not JSON serializable")
        }
    }

    private func writeJSONContainer(
        into out: inout String, _ options: JSONOptions, depth: Int,
        open: String, close: String, _ entries: [(String?, JinjaValue)]
    ) throws {
        out += open
        if entries.isEmpty { out += close; return }
        let separator = options.itemSeparator ?? (options.indent == nil ? ", " : ",")
        let newline = options.indent.map { "\n" + String(repeating: $0, count: depth + 1) } ?? ""
        for (index, (key, value)) in entries.enumerated() {
            if index > 0 { out += separator }
            out += newline
            if let key { out += jsonString(key, ensureASCII: options.ensureASCII) + options.keySeparator }
            try value.writeJSON(into: &out, options, depth: depth + 1)
        }
        if let indent = options.indent { out += "\n" + String(repeating: indent, count: depth) }
        out += close
    }
}

/// json.dumps turns non-string keys into strings: 1 -> "1", None -> "null".
private func jsonKey(_ key: JinjaObject.Key) -> String {
    switch key {
    case .string(let s): return s
    case .int(let i): return String(i)
    case .none: return "null"
    }
}

private func jsonString(_ s: String, ensureASCII: Bool) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E) {
                out += jsonUnicodeEscape(scalar)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// `\uXXXX`, split into a UTF-16 surrogate pair above the BMP as Python does.
private func jsonUnicodeEscape(_ scalar: Unicode.Scalar) -> String {
    UTF16.encode(scalar)!.map { unit in
        let hex = String(unit, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
    }.joined()
}
