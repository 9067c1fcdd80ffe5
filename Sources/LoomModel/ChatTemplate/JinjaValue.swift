/// A value as a chat template sees it. Templates were written against Python
/// objects (transformers renders them with jinja2), so truthiness, printing and
/// the template's own `==` follow Python rules; see `JinjaOperators.swift`.
///
/// The synthesized `Equatable` is structural (`.int(1) != .double(1)`), which
/// is what callers and tests comparing values want; the template's `==`
/// operator uses Python equality instead.
public enum JinjaValue: Sendable, Equatable {
    /// jinja2's default `Undefined`: falsy, prints as "", `is defined` is false,
    /// and only errors when something is looked up on it or it is computed with.
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// Python lists and tuples alike; templates cannot tell them apart except
    /// by printing, which chat templates don't do.
    case array([JinjaValue])
    /// A Python dict with string keys, keeping insertion order because
    /// `tojson` output and `items()` order depend on it.
    case object(JinjaObject)
    /// A `namespace(...)` object, which templates mutate from inside loops.
    case namespace(JinjaNamespace)
    /// A function, macro or bound method (`raise_exception`, `s.strip`).
    case callable(JinjaCallable)
}

/// An insertion-ordered Python dict, like one built from JSON. Keys are
/// strings except in the odd template literal (`{0: 0, 512: 128}`).
/// Equality ignores order, as Python's does.
public struct JinjaObject: Sendable, Equatable {
    /// A hashable Python dict key. Python hashes `1`, `1.0` and `True` alike,
    /// so integral numbers and booleans all become `.int`.
    public enum Key: Hashable, Sendable, ExpressibleByStringLiteral {
        case string(String)
        case int(Int)
        case none

        public init(stringLiteral value: String) { self = .string(value) }

        /// The key as a template value, for iteration and `items()`.
        public var value: JinjaValue {
            switch self {
            case .string(let s): return .string(s)
            case .int(let i): return .int(i)
            case .none: return .none
            }
        }

        /// The dict key a template value names, or nil if Python could not
        /// hash it (lists, dicts) or it is not a key type templates use.
        init?(_ value: JinjaValue) {
            switch value {
            case .string(let s): self = .string(s)
            case .int(let i): self = .int(i)
            case .bool(let b): self = .int(b ? 1 : 0)
            case .double(let d):
                guard let i = Int(exactly: d) else { return nil }
                self = .int(i)
            case .none: self = .none
            default: return nil
            }
        }
    }

    public private(set) var keys: [Key] = []
    private var storage: [Key: JinjaValue] = [:]

    public init() {}

    public init(_ pairs: [(String, JinjaValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public subscript(key: Key) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public subscript(key: String) -> JinjaValue? {
        get { self[.string(key)] }
        set { self[.string(key)] = newValue }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }
    public var values: [JinjaValue] { keys.map { storage[$0]! } }
    public var pairs: [(key: Key, value: JinjaValue)] { keys.map { ($0, storage[$0]!) } }

    public static func == (lhs: JinjaObject, rhs: JinjaObject) -> Bool {
        lhs.storage == rhs.storage
    }
}

extension JinjaObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (Key, JinjaValue)...) {
        for (key, value) in elements { self[key] = value }
    }
}

/// A handle to a `namespace()` created during one render. Python namespaces
/// are shared mutable objects (a `set ns.x` inside a loop is seen after it),
/// so the attributes live in the render's store and values carry only the
/// identity; equality is identity, as in Python.
public struct JinjaNamespace: Sendable, Hashable {
    let id: Int
}

/// Something a template can call. Opaque to callers: templates obtain these
/// from globals, macro definitions and method lookups.
public struct JinjaCallable: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// A global function such as `range` or `raise_exception`.
        case builtin(String)
        /// A `{% macro %}`, by its index in the parsed template.
        case macro(Int)
        /// A Python method looked up on a value (`content.strip`, `d.items`).
        indirect case method(receiver: JinjaValue, name: String)
    }

    let kind: Kind

    var name: String {
        switch kind {
        case .builtin(let name): return name
        case .macro(let index): return "macro #\(index)"
        case .method(_, let name): return name
        }
    }
}

extension JinjaValue {
    /// Python truthiness, which is what `if`, `and`, `or` and `not` test.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .namespace, .callable: return true
        }
    }

    public var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// The Python type name, used in error messages so they read like the
    /// jinja2 errors template authors already know.
    public var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }

    /// Python numbers, where `bool` counts as `int` (True + 1 == 2).
    var numeric: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// The integer value of an `int` or `bool`, as Python arithmetic sees it.
    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) {
        self = .object(JinjaObject(elements))
    }
}
