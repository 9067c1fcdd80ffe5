#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Python's operator semantics for template expressions: `bool` is an
/// `int`, `1 == 1.0`, `/` is true division, `//` and `%` floor toward
/// negative infinity, and integer overflow is an error rather than a wrap.
enum JinjaOperators {
    static func typeError(_ message: String) -> ChatTemplateError {
        ChatTemplateError(.type, message)
    }

    static func undefinedError() -> ChatTemplateError {
        ChatTemplateError(.undefined, "an undefined value was used in an operation")
    }

    /// Python `==`. Undefined equals only undefined, as jinja2's does.
    static func equals(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.pythonEquals(y)
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { equals($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.pairs.allSatisfy { pair in y[pair.key].map { equals(pair.value, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x == y
        case (.callable(let x), .callable(let y)): return x == y
        default:
            if let x = a.integer, let y = b.integer { return x == y }
            if let x = a.numeric, let y = b.numeric { return x == y }
            return false
        }
    }

    /// Python ordering (`<`); mixing types other than numbers is a TypeError.
    static func less(_ a: JinjaValue, _ b: JinjaValue, symbol: String = "<") throws -> Bool {
        switch (a, b) {
        case (.undefined, _), (_, .undefined): throw undefinedError()
        case (.string(let x), .string(let y)): return x.pythonLess(y)
        case (.array(let x), .array(let y)):
            for (u, v) in zip(x, y) where !equals(u, v) { return try less(u, v) }
            return x.count < y.count
        default:
            if let x = a.integer, let y = b.integer { return x < y }
            if let x = a.numeric, let y = b.numeric { return x < y }
            throw typeError("'\(symbol)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    static func compare(_ op: CompareOp, _ a: JinjaValue, _ b: JinjaValue) throws -> Bool {
        switch op {
        case .equal: return equals(a, b)
        case .notEqual: return !equals(a, b)
        case .less: return try less(a, b, symbol: "<")
        case .greater: return try less(b, a, symbol: ">")
        case .lessEqual: return try !less(b, a, symbol: "<=")
        case .greaterEqual: return try !less(a, b, symbol: ">=")
        case .contains: return try contains(b, a)
        case .notContains: return try !contains(b, a)
        }
    }

    /// Python `item in container`.
    static func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let needle) = item else {
                if item.isUndefined { throw undefinedError() }
                throw typeError("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return s.pythonContains(needle)
        case .array(let items): return items.contains { equals($0, item) }
        case .object(let object):
            guard let key = JinjaObject.Key(item) else { return false }
            return object[key] != nil
        case .undefined: return false
        default: throw typeError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    static func unary(_ op: UnaryOp, _ value: JinjaValue) throws -> JinjaValue {
        if let i = value.integer {
            if op == .plus { return .int(i) }
            guard i != Int.min else { throw ChatTemplateError(.value, "integer overflow") }
            return .int(-i)
        }
        if case .double(let d) = value { return .double(op == .plus ? d : -d) }
        if value.isUndefined { throw undefinedError() }
        throw typeError("bad operand type for unary \(op.rawValue): '\(value.typeName)'")
    }

    static func binary(_ op: BinaryOp, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        if op == .concat { return .string(a.pythonString + b.pythonString) }
        if a.isUndefined || b.isUndefined { throw undefinedError() }
        if let x = a.integer, let y = b.integer { return try integerArithmetic(op, x, y) }
        if let x = a.numeric, let y = b.numeric { return try floatArithmetic(op, x, y) }
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)): return .string(x + y)
        case (.add, .array(let x), .array(let y)): return .array(x + y)
        case (.multiply, .string(let s), _), (.multiply, _, .string(let s)):
            guard let n = (a.integer ?? b.integer) else { break }
            return .string(n > 0 ? String(repeating: s, count: n) : "")
        case (.multiply, .array(let items), _), (.multiply, _, .array(let items)):
            guard let n = (a.integer ?? b.integer) else { break }
            return .array(n > 0 ? Array([[JinjaValue]](repeating: items, count: n).joined()) : [])
        case (.modulo, .string, _):
            throw ChatTemplateError(.unsupported, "printf-style string formatting with '%' is not supported")
        default: break
        }
        throw typeError("unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'")
    }

    private static func integerArithmetic(_ op: BinaryOp, _ x: Int, _ y: Int) throws -> JinjaValue {
        let overflow = ChatTemplateError(.value, "integer overflow in \(x) \(op.rawValue) \(y)")
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> JinjaValue {
            if result.overflow { throw overflow }
            return .int(result.partialValue)
        }
        switch op {
        case .add: return try checked(x.addingReportingOverflow(y))
        case .subtract: return try checked(x.subtractingReportingOverflow(y))
        case .multiply: return try checked(x.multipliedReportingOverflow(by: y))
        case .divide: return try floatArithmetic(.divide, Double(x), Double(y))
        case .floorDivide, .modulo:
            guard y != 0 else { throw ChatTemplateError(.value, "integer division or modulo by zero") }
            guard !(x == Int.min && y == -1) else { throw overflow }
            var quotient = x / y
            var remainder = x % y
            if remainder != 0 && (remainder < 0) != (y < 0) {
                quotient -= 1
                remainder += y
            }
            return .int(op == .modulo ? remainder : quotient)
        case .power:
            if y < 0 { return .double(pow(Double(x), Double(y))) }
            var result = 1
            var base = x
            var exponent = y
            while exponent > 0 {
                if exponent & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)).integer! }
                exponent >>= 1
                if exponent > 0 { base = try checked(base.multipliedReportingOverflow(by: base)).integer! }
            }
            return .int(result)
        case .concat: return .string(String(x) + String(y))
        }
    }

    private static func floatArithmetic(_ op: BinaryOp, _ x: Double, _ y: Double) throws -> JinjaValue {
        switch op {
        case .add: return .double(x + y)
        case .subtract: return .double(x - y)
        case .multiply: return .double(x * y)
        case .divide:
            guard y != 0 else { throw ChatTemplateError(.value, "division by zero") }
            return .double(x / y)
        case .floorDivide, .modulo:
            guard y != 0 else { throw ChatTemplateError(.value, "float division or modulo by zero") }
            var remainder = x.truncatingRemainder(dividingBy: y)
            if remainder != 0 && (remainder < 0) != (y < 0) { remainder += y }
            return .double(op == .modulo ? remainder : ((x - remainder) / y).rounded())
        case .power: return .double(pow(x, y))
        case .concat: return .string(pythonFloatRepr(x) + pythonFloatRepr(y))
        }
    }
}
