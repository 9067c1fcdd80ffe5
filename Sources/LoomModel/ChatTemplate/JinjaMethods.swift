/// Python methods templates call on values: `content.strip()`,
/// `message.get('tool_calls')`, `tools.items()`. Only `str` and `dict`
/// methods: transformers renders in jinja2's immutable sandbox, which
/// forbids the mutating list methods anyway.
enum JinjaMethods {
    static func call(_ receiver: JinjaValue, _ name: String, _ arguments: CallArguments) throws -> JinjaValue {
        let mutating = receiver.typeName == "list" ? JinjaAccess.listMutatingMethods : JinjaAccess.dictMutatingMethods
        if receiver.typeName != "str" && mutating.contains(name) {
            throw ChatTemplateError(
                .unsupported,
                "'\(receiver.typeName).\(name)' is unsafe: templates render in jinja2's immutable sandbox")
        }
        switch receiver {
        case .string(let s): return try callStringMethod(s, name, arguments)
        case .object(let object): return try callDictMethod(object, name, arguments)
        default: throw ChatTemplateError(.type, "'\(receiver.typeName)' object has no method '\(name)'")
        }
    }

    private static func callDictMethod(_ object: JinjaObject, _ name: String, _ arguments: CallArguments) throws
        -> JinjaValue
    {
        switch name {
        case "items":
            _ = try arguments.bind([], function: name)
            return .array(object.pairs.map { .array([$0.key.value, $0.value]) })
        case "keys":
            _ = try arguments.bind([], function: name)
            return .array(object.keys.map(\.value))
        case "values":
            _ = try arguments.bind([], function: name)
            return .array(object.values)
        case "get":
            let args = try arguments.bind(["key", "default"], function: name)
            guard let key = JinjaObject.Key(args[0] ?? .undefined) else { return args[1] ?? .none }
            return object[key] ?? args[1] ?? .none
        default:
            throw ChatTemplateError(.type, "'dict' object has no method '\(name)'")
        }
    }

    private static func callStringMethod(_ s: String, _ name: String, _ arguments: CallArguments) throws
        -> JinjaValue
    {
        if let result = try transform(s, name, arguments) { return .string(result) }
        if let result = try predicate(s, name, arguments) { return .bool(result) }
        switch name {
        case "split", "rsplit":
            let args = try arguments.bind(["sep", "maxsplit"], function: name)
            let separator = try JinjaFilters.stringArgument(args[0], "separator")
            if separator == "" { throw ChatTemplateError(.value, "empty separator") }
            let limit = try JinjaFilters.intArgument(args[1], "maxsplit") ?? -1
            let parts = name == "split" ? s.pythonSplit(separator, maxSplit: limit) : s.pythonRSplit(separator, maxSplit: limit)
            return .array(parts.map { .string($0) })
        case "splitlines":
            _ = try arguments.bind([], function: name)
            return .array(JinjaFilters.pythonSplitLines(s).map { .string($0) })
        case "find", "rfind", "count":
            let args = try arguments.bind(["sub"], function: name)
            guard let sub = try JinjaFilters.stringArgument(args[0], "substring") else {
                throw ChatTemplateError(.type, "\(name)() needs a string argument")
            }
            if name == "find" { return .int(s.pythonFind(sub)) }
            if name == "count" { return .int(sub.isEmpty ? s.scalarCount + 1 : s.pythonOccurrences(of: sub).count) }
            let reversed = String(scalars: s.unicodeScalars.reversed())
            let found = reversed.pythonFind(String(scalars: sub.unicodeScalars.reversed()))
            return .int(found < 0 ? -1 : s.scalarCount - found - sub.scalarCount)
        default:
            throw ChatTemplateError(.type, "'str' object has no method '\(name)'")
        }
    }

    /// Methods returning a new string.
    private static func transform(_ s: String, _ name: String, _ arguments: CallArguments) throws -> String? {
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try JinjaFilters.stringArgument(try arguments.bind(["chars"], function: name)[0], "chars")
            return s.pythonStrip(chars, leading: name != "rstrip", trailing: name != "lstrip")
        case "upper", "lower", "title", "capitalize", "swapcase":
            _ = try arguments.bind([], function: name)
            switch name {
            case "upper": return s.uppercased()
            case "lower": return s.lowercased()
            case "title": return s.pythonTitle
            case "capitalize": return s.pythonCapitalized
            default:
                return s.unicodeScalars.map {
                    $0.properties.isUppercase ? String($0).lowercased() : String($0).uppercased()
                }.joined()
            }
        case "replace":
            let args = try arguments.bind(["old", "new", "count"], function: name)
            guard let old = try JinjaFilters.stringArgument(args[0], "old"),
                let new = try JinjaFilters.stringArgument(args[1], "new")
            else { throw ChatTemplateError(.type, "replace() needs two strings") }
            return s.pythonReplace(old, new, count: try JinjaFilters.intArgument(args[2], "count") ?? -1)
        case "join":
            let items = try JinjaAccess.iterate(try arguments.bind(["iterable"], function: name)[0] ?? .undefined)
            return try items.map { item in
                guard case .string(let text) = item else {
                    throw ChatTemplateError(.type, "sequence item: expected str instance, \(item.typeName) found")
                }
                return text
            }.joined(separator: s)
        case "removeprefix", "removesuffix":
            let affix = try JinjaFilters.stringArgument(try arguments.bind(["affix"], function: name)[0], "affix") ?? ""
            let scalars = Array(s.unicodeScalars)
            if name == "removeprefix" { return s.pythonHasPrefix(affix) ? String(scalars: scalars.dropFirst(affix.scalarCount)) : s }
            return s.pythonHasSuffix(affix) && !affix.isEmpty ? String(scalars: scalars.dropLast(affix.scalarCount)) : s
        case "center", "ljust", "rjust", "zfill":
            return try pad(s, name, arguments)
        case "format":
            return try format(s, arguments)
        default:
            return nil
        }
    }

    /// `str.format` with `{}`, `{0}`, `{name}` fields and `!r`/`!s`
    /// conversions; format specs (`{:>10}`) are refused rather than ignored.
    private static func format(_ s: String, _ arguments: CallArguments) throws -> String {
        var out = ""
        var scalars = s.unicodeScalars[...]
        var nextIndex = 0
        while let c = scalars.popFirst() {
            if (c == "{" || c == "}") && scalars.first == c {
                scalars.removeFirst()
                out.unicodeScalars.append(c)
            } else if c == "{" {
                guard let close = scalars.firstIndex(of: "}") else {
                    throw ChatTemplateError(.value, "Single '{' encountered in format string")
                }
                out += try formatField(String(scalars[..<close]), arguments, &nextIndex)
                scalars = scalars[scalars.index(after: close)...]
            } else if c == "}" {
                throw ChatTemplateError(.value, "Single '}' encountered in format string")
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func formatField(_ field: String, _ arguments: CallArguments, _ nextIndex: inout Int) throws
        -> String
    {
        var name = field
        var conversion: String? = nil
        if field.contains(":") {
            throw ChatTemplateError(.unsupported, "format specs in str.format ('{\(field)}') are not supported")
        }
        if let bang = field.firstIndex(of: "!") {
            name = String(field[..<bang])
            conversion = String(field[field.index(after: bang)...])
        }
        let value: JinjaValue
        if name.isEmpty || Int(name) != nil {
            let index = Int(name) ?? nextIndex
            if name.isEmpty { nextIndex += 1 }
            guard arguments.positional.indices.contains(index) else {
                throw ChatTemplateError(.value, "Replacement index \(index) out of range for positional args tuple")
            }
            value = arguments.positional[index]
        } else {
            guard let keyword = arguments.keyword.first(where: { $0.name == name }) else {
                throw ChatTemplateError(.value, "str.format has no argument named '\(name)'")
            }
            value = keyword.value
        }
        switch conversion {
        case nil, "s": return value.pythonString
        case "r": return value.pythonRepr
        default: throw ChatTemplateError(.unsupported, "str.format conversion '!\(conversion!)' is not supported")
        }
    }

    private static func pad(_ s: String, _ name: String, _ arguments: CallArguments) throws -> String {
        let args = try arguments.bind(name == "zfill" ? ["width"] : ["width", "fillchar"], function: name)
        guard let width = try JinjaFilters.intArgument(args[0], "width") else {
            throw ChatTemplateError(.type, "\(name)() needs a width")
        }
        let fill = try JinjaFilters.stringArgument(args.count > 1 ? args[1] : nil, "fillchar") ?? " "
        let missing = max(0, width - s.scalarCount)
        switch name {
        case "ljust": return s + String(repeating: fill, count: missing)
        case "rjust": return String(repeating: fill, count: missing) + s
        case "zfill":
            guard let sign = s.unicodeScalars.first, sign == "-" || sign == "+" else {
                return String(repeating: "0", count: missing) + s
            }
            return String(sign) + String(repeating: "0", count: missing) + String(scalars: s.unicodeScalars.dropFirst())
        default:
            let left = missing / 2 + (missing & width & 1)
            return String(repeating: fill, count: left) + s + String(repeating: fill, count: missing - left)
        }
    }

    /// Methods returning a bool.
    private static func predicate(_ s: String, _ name: String, _ arguments: CallArguments) throws -> Bool? {
        switch name {
        case "startswith", "endswith":
            let args = try arguments.bind(["prefix"], function: name)
            let candidates: [JinjaValue]
            switch args[0] {
            case .string?: candidates = [args[0]!]
            case .array(let items)?: candidates = items
            default: throw ChatTemplateError(.type, "\(name) first arg must be str or a tuple of str")
            }
            return try candidates.contains { candidate in
                guard case .string(let affix) = candidate else {
                    throw ChatTemplateError(.type, "\(name) tuple items must be str")
                }
                return name == "startswith" ? s.pythonHasPrefix(affix) : s.pythonHasSuffix(affix)
            }
        case "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper":
            _ = try arguments.bind([], function: name)
            return characterClass(s, name)
        default:
            return nil
        }
    }

    private static func characterClass(_ s: String, _ name: String) -> Bool {
        let scalars = s.unicodeScalars
        switch name {
        case "isdigit": return !scalars.isEmpty && scalars.allSatisfy { $0.properties.numericType == .decimal || $0.properties.numericType == .digit }
        case "isalpha": return !scalars.isEmpty && scalars.allSatisfy { $0.properties.isAlphabetic }
        case "isalnum": return !scalars.isEmpty && scalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }
        case "isspace": return !scalars.isEmpty && scalars.allSatisfy(isPythonSpace)
        default:
            let cased = scalars.filter { $0.properties.isCased }
            guard !cased.isEmpty else { return false }
            return cased.allSatisfy { name == "islower" ? !$0.properties.isUppercase : !$0.properties.isLowercase }
        }
    }
}
