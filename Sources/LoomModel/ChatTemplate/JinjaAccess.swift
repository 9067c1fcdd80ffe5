/// Evaluated arguments of a call, filter, test or method, bound to Python
/// parameter names so `tojson(indent=2)` and `join(", ")` both work.
struct CallArguments {
    var positional: [JinjaValue] = []
    var keyword: [(name: String, value: JinjaValue)] = []

    /// Maps arguments onto `parameters` like a Python signature without
    /// `*args`; extra or unknown arguments are errors, missing ones nil.
    func bind(_ parameters: [String], function: String) throws -> [JinjaValue?] {
        guard positional.count <= parameters.count else {
            throw ChatTemplateError(
                .type, "\(function)() takes at most \(parameters.count) argument(s), \(positional.count) given")
        }
        var bound: [JinjaValue?] = positional.map { $0 } + Array(repeating: nil, count: parameters.count - positional.count)
        for (name, value) in keyword {
            guard let index = parameters.firstIndex(of: name) else {
                throw ChatTemplateError(.type, "\(function)() got an unexpected keyword argument '\(name)'")
            }
            guard bound[index] == nil else {
                throw ChatTemplateError(.type, "\(function)() got multiple values for argument '\(name)'")
            }
            bound[index] = value
        }
        return bound
    }
}

/// Reading inside values the way jinja2 does: `getattr` for `a.b` and
/// `getitem` for `a[b]`, each falling back to the other, and a missing
/// attribute or item yielding undefined rather than an error.
enum JinjaAccess {
    static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "splitlines",
        "upper", "lower", "title", "capitalize", "swapcase", "replace", "find", "rfind", "count",
        "join", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "removeprefix",
        "removesuffix", "center", "ljust", "rjust", "zfill", "format",
    ]
    static let dictMethods: Set<String> = ["items", "keys", "values", "get"]
    /// Mutating methods exist in Python, but jinja2's immutable sandbox
    /// (which transformers uses) refuses them; looking them up yields a
    /// method that fails with that explanation when called.
    static let listMutatingMethods: Set<String> = [
        "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
    ]
    static let dictMutatingMethods: Set<String> = ["update", "pop", "popitem", "setdefault", "clear"]

    /// `value.name`. Python attributes win over dict keys, so `d.items` is
    /// the method even when `d` has an "items" key.
    static func attribute(_ value: JinjaValue, _ name: String) -> JinjaValue {
        switch value {
        case .object(let object):
            if dictMethods.contains(name) || dictMutatingMethods.contains(name) { return method(value, name) }
            return object[name] ?? .undefined
        case .string:
            return stringMethods.contains(name) ? method(value, name) : .undefined
        case .array:
            return listMutatingMethods.contains(name) ? method(value, name) : .undefined
        default:
            return .undefined
        }
    }

    /// `value[key]`. Dict keys win over attributes here.
    static func item(_ value: JinjaValue, _ key: JinjaValue) -> JinjaValue {
        switch (value, key) {
        case (.object(let object), _):
            if let found = JinjaObject.Key(key).flatMap({ object[$0] }) { return found }
        case (.array(let items), _):
            guard let index = key.integer else { break }
            let resolved = index < 0 ? index + items.count : index
            return items.indices.contains(resolved) ? items[resolved] : .undefined
        case (.string(let s), _):
            guard let index = key.integer else { break }
            let scalars = Array(s.unicodeScalars)
            let resolved = index < 0 ? index + scalars.count : index
            return scalars.indices.contains(resolved) ? .string(String(scalars[resolved])) : .undefined
        default:
            break
        }
        if case .string(let name) = key { return attribute(value, name) }
        return .undefined
    }

    private static func method(_ receiver: JinjaValue, _ name: String) -> JinjaValue {
        .callable(JinjaCallable(kind: .method(receiver: receiver, name: name)))
    }

    /// jinja2's attribute getter for filters (`map(attribute='a.b')`,
    /// `selectattr`): dotted paths, integer parts index lists.
    static func path(_ value: JinjaValue, _ path: String) -> JinjaValue {
        var current = value
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            let key: JinjaValue = Int(part).map { .int($0) } ?? .string(String(part))
            current = item(current, key)
        }
        return current
    }

    /// What a `for` loop or an iterating filter walks: list items, dict keys,
    /// string characters; undefined iterates as empty, as jinja2's does.
    static func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .array(let items): return items
        case .object(let object): return object.keys.map(\.value)
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw ChatTemplateError(.type, "'\(value.typeName)' object is not iterable")
        }
    }

    /// Python `len()`.
    static func length(_ value: JinjaValue) throws -> Int {
        switch value {
        case .array(let items): return items.count
        case .object(let object): return object.count
        case .string(let s): return s.scalarCount
        case .undefined: return 0
        default: throw ChatTemplateError(.type, "object of type '\(value.typeName)' has no len()")
        }
    }

    /// Python slicing `value[start:stop:step]` on lists and strings.
    static func slice(_ value: JinjaValue, start: JinjaValue, stop: JinjaValue, step: JinjaValue) throws -> JinjaValue {
        func bound(_ v: JinjaValue) throws -> Int? {
            if case .none = v { return nil }
            if v.isUndefined { return nil }
            guard let i = v.integer else {
                throw ChatTemplateError(.type, "slice indices must be integers or None")
            }
            return i
        }
        let stepValue = try bound(step) ?? 1
        guard stepValue != 0 else { throw ChatTemplateError(.value, "slice step cannot be zero") }
        switch value {
        case .array(let items):
            return .array(sliceIndices(items.count, try bound(start), try bound(stop), stepValue).map { items[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            let picked = sliceIndices(scalars.count, try bound(start), try bound(stop), stepValue)
            return .string(String(scalars: picked.map { scalars[$0] }))
        case .undefined:
            throw ChatTemplateError(.undefined, "cannot slice an undefined value")
        default:
            throw ChatTemplateError(.type, "'\(value.typeName)' object is not subscriptable")
        }
    }

    /// The indices Python's `slice.indices` visits, clamping like CPython.
    static func sliceIndices(_ count: Int, _ start: Int?, _ stop: Int?, _ step: Int) -> [Int] {
        func clamp(_ i: Int, low: Int, high: Int) -> Int {
            let resolved = i < 0 ? i + count : i
            return min(max(resolved, low), high)
        }
        if step > 0 {
            let from = start.map { clamp($0, low: 0, high: count) } ?? 0
            let to = stop.map { clamp($0, low: 0, high: count) } ?? count
            return from < to ? Array(stride(from: from, to: to, by: step)) : []
        }
        let from = start.map { clamp($0, low: -1, high: count - 1) } ?? count - 1
        let to = stop.map { clamp($0, low: -1, high: count - 1) } ?? -1
        return from > to ? Array(stride(from: from, to: to, by: step)) : []
    }
}
