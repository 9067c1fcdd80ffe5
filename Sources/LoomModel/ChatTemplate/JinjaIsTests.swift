/// jinja2's builtin tests (`x is defined`, `x is equalto 3`), with Python's
/// notion of types: `bool` is a number, a dict is a sequence.
enum JinjaTests {
    static let names: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number",
        "string", "mapping", "iterable", "sequence", "callable", "sameas", "escaped", "odd", "even",
        "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt",
        "greaterthan", ">", "ge", ">=", "in", "lower", "upper", "filter", "test",
    ]

    static func apply(_ name: String, _ value: JinjaValue, _ arguments: CallArguments) throws -> Bool {
        guard names.contains(name) else { throw ChatTemplateError(.unsupported, "unknown test '\(name)'") }
        if let result = typeTest(name, value) { return result }
        let args = try arguments.bind(["other"], function: name)
        let other = args[0] ?? .undefined
        switch name {
        case "sameas": return sameAs(value, other)
        case "odd", "even", "divisibleby":
            guard let i = value.integer else {
                if value.isUndefined { throw JinjaOperators.undefinedError() }
                throw ChatTemplateError(.type, "test '\(name)' needs an integer, got \(value.typeName)")
            }
            if name == "divisibleby" {
                guard let d = other.integer, d != 0 else {
                    throw ChatTemplateError(.value, "divisibleby needs a non-zero integer")
                }
                return i % d == 0
            }
            return (i % 2 == 0) == (name == "even")
        case "eq", "equalto", "==": return JinjaOperators.equals(value, other)
        case "ne", "!=": return !JinjaOperators.equals(value, other)
        case "lt", "lessthan", "<": return try JinjaOperators.compare(.less, value, other)
        case "le", "<=": return try JinjaOperators.compare(.lessEqual, value, other)
        case "gt", "greaterthan", ">": return try JinjaOperators.compare(.greater, value, other)
        case "ge", ">=": return try JinjaOperators.compare(.greaterEqual, value, other)
        case "in": return try JinjaOperators.contains(other, value)
        case "lower": return isCase(value.pythonString, upper: false)
        case "upper": return isCase(value.pythonString, upper: true)
        case "filter":
            guard case .string(let n) = value else { return false }
            return JinjaFilters.names.contains(n)
        case "test":
            guard case .string(let n) = value else { return false }
            return names.contains(n)
        default:
            throw ChatTemplateError(.unsupported, "unknown test '\(name)'")
        }
    }

    /// Tests that only look at the value's type.
    private static func typeTest(_ name: String, _ value: JinjaValue) -> Bool? {
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value == .none
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": return value == .bool(true)
        case "false": return value == .bool(false)
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.numeric != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .object = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .array, .object, .string: return true
            case .undefined: return true  // jinja2's Undefined has __len__ and __getitem__
            default: return false
            }
        case "callable": if case .callable = value { return true } else { return false }
        case "escaped": return false
        default: return nil
        }
    }

    /// Python `is`: meaningful for None and booleans; other values compare
    /// by value, which is what identity gives for CPython's small constants.
    private static func sameAs(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.none, .none): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.bool, _), (_, .bool), (.none, _), (_, .none): return false
        default: return a == b
        }
    }

    /// Python `str.islower` / `isupper`: at least one cased character and no
    /// cased character of the other case.
    private static func isCase(_ s: String, upper: Bool) -> Bool {
        var sawCased = false
        for scalar in s.unicodeScalars where scalar.properties.isCased {
            sawCased = true
            if upper ? scalar.properties.isLowercase : scalar.properties.isUppercase { return false }
        }
        return sawCased
    }
}
