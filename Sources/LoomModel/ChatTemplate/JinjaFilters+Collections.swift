/// Filters over sequences and dicts: picking, joining, sorting, and the
/// `map` / `select` family that chat templates use to pull fields out of
/// message lists.
extension JinjaFilters {
    static func applyCollectionFilter(_ name: String, _ value: JinjaValue, _ arguments: CallArguments) throws
        -> JinjaValue?
    {
        switch name {
        case "first", "last", "list", "items", "reverse":
            _ = try arguments.bind([], function: name)
            return try simpleCollectionFilter(name, value)
        case "join":
            let args = try arguments.bind(["d", "attribute"], function: name)
            var items = try JinjaAccess.iterate(value)
            if let path = try stringArgument(args[1], "join attribute") { items = items.map { JinjaAccess.path($0, path) } }
            let separator = args[0]?.pythonString ?? ""
            return .string(items.map(\.pythonString).joined(separator: separator))
        case "sort":
            let args = try arguments.bind(["reverse", "case_sensitive", "attribute"], function: name)
            return .array(
                try sorted(
                    try JinjaAccess.iterate(value), caseSensitive: args[1], attribute: args[2],
                    reverse: args[0]?.isTruthy ?? false))
        case "unique":
            let args = try arguments.bind(["case_sensitive", "attribute"], function: name)
            return .array(try unique(try JinjaAccess.iterate(value), caseSensitive: args[0], attribute: args[1]))
        case "min", "max":
            let args = try arguments.bind(["case_sensitive", "attribute"], function: name)
            // Python's min/max return the first of equal extremes.
            let items = try sorted(
                try JinjaAccess.iterate(value), caseSensitive: args[0], attribute: args[1], reverse: name == "max")
            return items.first ?? .undefined
        case "sum":
            let args = try arguments.bind(["attribute", "start"], function: name)
            var items = try JinjaAccess.iterate(value)
            if let path = try stringArgument(args[0], "sum attribute") { items = items.map { JinjaAccess.path($0, path) } }
            return try items.reduce(args[1] ?? .int(0)) { try JinjaOperators.binary(.add, $0, $1) }
        case "dictsort": return try dictSort(value, arguments)
        case "map", "select", "reject", "selectattr", "rejectattr":
            // jinja2 skips iterating falsy input here, so `none | map(...)` is empty.
            guard value.isTruthy else { return .array([]) }
            return try mapOrSelect(name, value, arguments)
        default: return nil
        }
    }

    private static func mapOrSelect(_ name: String, _ value: JinjaValue, _ arguments: CallArguments) throws
        -> JinjaValue
    {
        switch name {
        case "map": return try map(value, arguments)
        case "select", "reject": return try select(value, arguments, keep: name == "select")
        default: return try selectAttribute(value, arguments, keep: name == "selectattr")
        }
    }

    private static func simpleCollectionFilter(_ name: String, _ value: JinjaValue) throws -> JinjaValue {
        switch name {
        case "first": return try JinjaAccess.iterate(value).first ?? .undefined
        case "last": return try JinjaAccess.iterate(value).last ?? .undefined
        case "list": return .array(try JinjaAccess.iterate(value))
        case "items":
            switch value {
            case .object(let object): return .array(object.pairs.map { .array([$0.key.value, $0.value]) })
            case .undefined: return .array([])
            default: throw ChatTemplateError(.type, "items filter needs a mapping, got \(value.typeName)")
            }
        default:
            if case .string(let s) = value { return .string(String(scalars: s.unicodeScalars.reversed())) }
            return .array(try JinjaAccess.iterate(value).reversed())
        }
    }

    /// The key jinja2 sorts and deduplicates by: the attribute, lowercased
    /// when comparison is case-insensitive (the default).
    private static func sortKey(_ item: JinjaValue, caseSensitive: JinjaValue?, attribute: JinjaValue?) throws
        -> JinjaValue
    {
        var key = item
        if let path = try stringArgument(attribute, "attribute") { key = JinjaAccess.path(item, path) }
        if !(caseSensitive?.isTruthy ?? false), case .string(let s) = key { key = .string(s.lowercased()) }
        return key
    }

    /// A stable sort, as Python's `sorted` is; `reverse` keeps equal items
    /// in their original order too.
    private static func sorted(
        _ items: [JinjaValue], caseSensitive: JinjaValue?, attribute: JinjaValue?, reverse: Bool = false
    ) throws -> [JinjaValue] {
        let keyed = try items.enumerated().map {
            (offset: $0.offset, key: try sortKey($0.element, caseSensitive: caseSensitive, attribute: attribute),
             item: $0.element)
        }
        return try keyed.sorted { a, b in
            if try JinjaOperators.less(a.key, b.key) { return !reverse }
            if try JinjaOperators.less(b.key, a.key) { return reverse }
            return a.offset < b.offset
        }.map(\.item)
    }

    private static func unique(_ items: [JinjaValue], caseSensitive: JinjaValue?, attribute: JinjaValue?) throws
        -> [JinjaValue]
    {
        var seen: [JinjaValue] = []
        var result: [JinjaValue] = []
        for item in items {
            let key = try sortKey(item, caseSensitive: caseSensitive, attribute: attribute)
            if !seen.contains(where: { JinjaOperators.equals($0, key) }) {
                seen.append(key)
                result.append(item)
            }
        }
        return result
    }

    private static func dictSort(_ value: JinjaValue, _ arguments: CallArguments) throws -> JinjaValue {
        let args = try arguments.bind(["case_sensitive", "by", "reverse"], function: "dictsort")
        guard case .object(let object) = value else {
            throw ChatTemplateError(.type, "dictsort needs a mapping, got \(value.typeName)")
        }
        let byValue: Bool
        switch try stringArgument(args[1], "dictsort by") ?? "key" {
        case "key": byValue = false
        case "value": byValue = true
        default: throw ChatTemplateError(.value, "You can only sort by either \"key\" or \"value\"")
        }
        let pairs: [JinjaValue] = object.pairs.map { .array([$0.key.value, $0.value]) }
        return .array(
            try sorted(
                pairs, caseSensitive: args[0], attribute: .string(byValue ? "1" : "0"),
                reverse: args[2]?.isTruthy ?? false))
    }

    /// `map(attribute='x', default=...)` or `map('filter', args...)`.
    private static func map(_ value: JinjaValue, _ arguments: CallArguments) throws -> JinjaValue {
        let items = try JinjaAccess.iterate(value)
        if arguments.positional.isEmpty {
            var rest = arguments
            let attribute = rest.keyword.first { $0.name == "attribute" }?.value
            let fallback = rest.keyword.first { $0.name == "default" }?.value
            rest.keyword.removeAll { $0.name == "attribute" || $0.name == "default" }
            guard case .string(let path)? = attribute, rest.keyword.isEmpty else {
                throw ChatTemplateError(.type, "map() needs a filter name or attribute=")
            }
            return .array(items.map { item in
                let found = JinjaAccess.path(item, path)
                return found.isUndefined ? (fallback ?? found) : found
            })
        }
        guard case .string(let filter) = arguments.positional[0] else {
            throw ChatTemplateError(.type, "map() filter name must be a string")
        }
        guard names.contains(filter) else { throw ChatTemplateError(.unsupported, "unknown filter '\(filter)' in map()") }
        let rest = CallArguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword)
        return .array(try items.map { try apply(filter, $0, rest) })
    }

    /// `select('test', args...)`; without a test, keeps truthy items.
    private static func select(_ value: JinjaValue, _ arguments: CallArguments, keep: Bool) throws -> JinjaValue {
        let items = try JinjaAccess.iterate(value)
        guard let first = arguments.positional.first else {
            return .array(items.filter { $0.isTruthy == keep })
        }
        let (test, rest) = try testAndArguments(first, arguments, dropping: 1)
        return .array(try items.filter { try JinjaTests.apply(test, $0, rest) == keep })
    }

    /// `selectattr('attr')` keeps items whose attribute is truthy;
    /// `selectattr('attr', 'test', args...)` applies the test to it.
    private static func selectAttribute(_ value: JinjaValue, _ arguments: CallArguments, keep: Bool) throws
        -> JinjaValue
    {
        let items = try JinjaAccess.iterate(value)
        guard case .string(let path)? = arguments.positional.first else {
            throw ChatTemplateError(.type, "selectattr/rejectattr needs an attribute name")
        }
        guard arguments.positional.count > 1 else {
            return .array(items.filter { JinjaAccess.path($0, path).isTruthy == keep })
        }
        let (test, rest) = try testAndArguments(arguments.positional[1], arguments, dropping: 2)
        return .array(try items.filter { try JinjaTests.apply(test, JinjaAccess.path($0, path), rest) == keep })
    }

    private static func testAndArguments(_ name: JinjaValue, _ arguments: CallArguments, dropping: Int) throws
        -> (String, CallArguments)
    {
        guard case .string(let test) = name else { throw ChatTemplateError(.type, "test name must be a string") }
        guard JinjaTests.names.contains(test) else { throw ChatTemplateError(.unsupported, "unknown test '\(test)'") }
        return (test, CallArguments(positional: Array(arguments.positional.dropFirst(dropping)), keyword: arguments.keyword))
    }
}
