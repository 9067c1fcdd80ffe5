/// jinja2's builtin filters that chat templates use, plus transformers'
/// `tojson`. Each follows the jinja2 3.1 implementation, including how it
/// treats undefined input (most print it as "", a few refuse it).
enum JinjaFilters {
    static let names: Set<String> = [
        "abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "forceescape", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe",
        "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper",
        "wordcount",
    ]

    static func apply(_ name: String, _ value: JinjaValue, _ arguments: CallArguments) throws -> JinjaValue {
        if let result = try applyStringFilter(name, value, arguments) { return result }
        if let result = try applyCollectionFilter(name, value, arguments) { return result }
        switch name {
        case "default", "d":
            let args = try arguments.bind(["default_value", "boolean"], function: name)
            let useDefault = (args[1]?.isTruthy ?? false) ? !value.isTruthy : value.isUndefined
            return useDefault ? (args[0] ?? .string("")) : value
        case "length", "count":
            _ = try arguments.bind([], function: name)
            return .int(try JinjaAccess.length(value))
        case "string":
            _ = try arguments.bind([], function: name)
            return .string(value.pythonString)
        case "int": return try toInt(value, arguments)
        case "float": return try toFloat(value, arguments)
        case "abs":
            _ = try arguments.bind([], function: name)
            if let i = value.integer {
                guard i != Int.min else { throw ChatTemplateError(.value, "integer overflow in abs()") }
                return .int(Swift.abs(i))
            }
            if case .double(let d) = value { return .double(Swift.abs(d)) }
            throw ChatTemplateError(.type, "bad operand type for abs(): '\(value.typeName)'")
        case "round": return try round(value, arguments)
        case "safe":
            return value
        case "tojson": return .string(try value.json(try jsonOptions(arguments)))
        case "attr":
            let args = try arguments.bind(["name"], function: name)
            guard case .string(let attribute)? = args[0] else {
                throw ChatTemplateError(.type, "attr() needs an attribute name")
            }
            // Python getattr only: a dict's keys are not attributes here.
            if case .object = value, !JinjaAccess.dictMethods.contains(attribute) { return .undefined }
            return JinjaAccess.attribute(value, attribute)
        default:
            throw ChatTemplateError(.unsupported, "unknown filter '\(name)'")
        }
    }

    static func stringArgument(_ value: JinjaValue?, _ what: String) throws -> String? {
        switch value {
        case nil, .none?: return nil
        case .string(let s)?: return s
        case let other?: throw ChatTemplateError(.type, "\(what) must be a string, not \(other.typeName)")
        }
    }

    static func intArgument(_ value: JinjaValue?, _ what: String) throws -> Int? {
        switch value {
        case nil, .none?: return nil
        case let other?:
            guard let i = other.integer else {
                throw ChatTemplateError(.type, "\(what) must be an integer, not \(other.typeName)")
            }
            return i
        }
    }

    private static func applyStringFilter(_ name: String, _ value: JinjaValue, _ arguments: CallArguments) throws
        -> JinjaValue?
    {
        let text = value.pythonString
        switch name {
        case "upper", "lower", "capitalize", "title", "wordcount", "escape", "e", "forceescape":
            _ = try arguments.bind([], function: name)
            switch name {
            case "upper": return .string(text.uppercased())
            case "lower": return .string(text.lowercased())
            case "capitalize": return .string(text.pythonCapitalized)
            case "title": return .string(text.jinjaTitle)
            case "wordcount": return .int(wordCount(text))
            default: return .string(htmlEscape(text))
            }
        case "trim":
            let args = try arguments.bind(["chars"], function: name)
            return .string(text.pythonStrip(try stringArgument(args[0], "trim chars")))
        case "replace":
            let args = try arguments.bind(["old", "new", "count"], function: name)
            guard let old = try stringArgument(args[0], "replace old"), let new = try stringArgument(args[1], "replace new")
            else { throw ChatTemplateError(.type, "replace() needs old and new strings") }
            return .string(text.pythonReplace(old, new, count: try intArgument(args[2], "replace count") ?? -1))
        case "center":
            let args = try arguments.bind(["width"], function: name)
            return .string(center(text, width: try intArgument(args[0], "center width") ?? 80))
        case "indent":
            return .string(try indent(text, arguments))
        default:
            return nil
        }
    }

    private static func wordCount(_ text: String) -> Int {
        var count = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            let isWordCharacter = scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType != nil
            if isWordCharacter && !inWord { count += 1 }
            inWord = isWordCharacter
        }
        return count
    }

    /// markupsafe's escaping, which is what `escape` produces even with
    /// autoescape off.
    private static func htmlEscape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Python `str.center`, including where it puts the odd padding space.
    static func center(_ text: String, width: Int) -> String {
        let length = text.scalarCount
        guard width > length else { return text }
        let margin = width - length
        let left = margin / 2 + (margin & width & 1)
        return String(repeating: " ", count: left) + text + String(repeating: " ", count: margin - left)
    }

    private static func indent(_ text: String, _ arguments: CallArguments) throws -> String {
        let args = try arguments.bind(["width", "first", "blank"], function: "indent")
        let indentation: String
        switch args[0] {
        case .string(let s)?: indentation = s
        default: indentation = String(repeating: " ", count: try intArgument(args[0], "indent width") ?? 4)
        }
        // jinja2 appends a newline first so a trailing newline is kept.
        let lines = pythonSplitLines(text + "\n")
        var result: String
        if args[2]?.isTruthy ?? false {
            result = lines.joined(separator: "\n" + indentation)
        } else {
            result = lines.first ?? ""
            let rest = lines.dropFirst().map { $0.isEmpty ? $0 : indentation + $0 }
            if !rest.isEmpty { result += "\n" + rest.joined(separator: "\n") }
        }
        if args[1]?.isTruthy ?? false { result = indentation + result }
        return result
    }

    /// Python `str.splitlines()` (without keepends).
    static func pythonSplitLines(_ text: String) -> [String] {
        let breaks: Set<UInt32> = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029]
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        var previousCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\n" && previousCR {
                previousCR = false
                continue
            }
            previousCR = scalar == "\r"
            if breaks.contains(scalar.value) {
                lines.append(String(current))
                current = .init()
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }

    /// jinja2's `int`: strings parse in `base`, "42.5" falls back through
    /// float, anything unparseable gives the default.
    private static func toInt(_ value: JinjaValue, _ arguments: CallArguments) throws -> JinjaValue {
        let args = try arguments.bind(["default", "base"], function: "int")
        let fallback = args[0] ?? .int(0)
        switch value {
        case .int, .bool: return .int(value.integer!)
        case .double(let d):
            guard d.isFinite, let i = Int(exactly: d.rounded(.towardZero)) else { return fallback }
            return .int(i)
        case .string(let s):
            if let i = parsePythonInt(s, base: try intArgument(args[1], "int base") ?? 10) { return .int(i) }
            guard let d = Double(s.pythonStrip(nil)), d.isFinite, let i = Int(exactly: d.rounded(.towardZero))
            else { return fallback }
            return .int(i)
        case .undefined: throw JinjaOperators.undefinedError()
        default: return fallback
        }
    }

    /// Python `int(text, base)`: surrounding whitespace, a sign, `_` between
    /// digits, and a 0x/0o/0b prefix matching the base (any, for base 0).
    static func parsePythonInt(_ text: String, base: Int) -> Int? {
        var body = Substring(text.pythonStrip(nil).lowercased())
        var negative = false
        if let sign = body.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            body = body.dropFirst()
        }
        var radix = base
        for (prefix, prefixBase) in [("0x", 16), ("0o", 8), ("0b", 2)] where body.hasPrefix(prefix) {
            if base == 0 || base == prefixBase {
                radix = prefixBase
                body = body.dropFirst(2)
            }
        }
        if radix == 0 { radix = 10 }
        guard (2...36).contains(radix), !body.hasPrefix("_"), !body.hasSuffix("_"), !body.contains("__") else {
            return nil
        }
        return Int((negative ? "-" : "") + String(body.filter { $0 != "_" }), radix: radix)
    }

    private static func toFloat(_ value: JinjaValue, _ arguments: CallArguments) throws -> JinjaValue {
        let args = try arguments.bind(["default"], function: "float")
        if let d = value.numeric { return .double(d) }
        if case .string(let s) = value, let d = Double(s.pythonStrip(nil)) { return .double(d) }
        if value.isUndefined { throw JinjaOperators.undefinedError() }
        return args[0] ?? .double(0)
    }

    /// Python's `round(value, precision)` rounds half to even; `floor` and
    /// `ceil` methods are jinja2's alternatives.
    private static func round(_ value: JinjaValue, _ arguments: CallArguments) throws -> JinjaValue {
        let args = try arguments.bind(["precision", "method"], function: "round")
        let precision = try intArgument(args[0], "round precision") ?? 0
        let method = try stringArgument(args[1], "round method") ?? "common"
        guard let number = value.numeric else {
            throw ChatTemplateError(.type, "round() needs a number, got \(value.typeName)")
        }
        let rule: FloatingPointRoundingRule
        switch method {
        case "common":
            if let i = value.integer, precision >= 0 { return .int(i) }
            rule = .toNearestOrEven
        case "floor": rule = .down
        case "ceil": rule = .up
        default: throw ChatTemplateError(.value, "method must be 'common', 'ceil' or 'floor'")
        }
        var scale = 1.0
        for _ in 0..<Swift.abs(precision) { scale *= 10 }
        if precision < 0 { return .double((number / scale).rounded(rule) * scale) }
        return .double((number * scale).rounded(rule) / scale)
    }

    /// transformers' `tojson(x, ensure_ascii=False, indent=None,
    /// separators=None, sort_keys=False)`, i.e. plain `json.dumps`.
    private static func jsonOptions(_ arguments: CallArguments) throws -> JSONOptions {
        let args = try arguments.bind(["ensure_ascii", "indent", "separators", "sort_keys"], function: "tojson")
        var options = JSONOptions()
        options.ensureASCII = args[0]?.isTruthy ?? false
        options.sortKeys = args[3]?.isTruthy ?? false
        switch args[1] {
        case nil, .none?: break
        case .string(let s)?: options.indent = s
        case let other?: options.indent = String(repeating: " ", count: max(0, try intArgument(other, "indent") ?? 0))
        }
        switch args[2] {
        case nil, .none?: break
        case .array(let parts)?:
            guard parts.count == 2, case .string(let item) = parts[0], case .string(let key) = parts[1] else {
                throw ChatTemplateError(.type, "tojson separators must be a pair of strings")
            }
            options.itemSeparator = item
            options.keySeparator = key
        case let other?: throw ChatTemplateError(.type, "tojson separators must be a pair, not \(other.typeName)")
        }
        return options
    }
}
