#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Global functions whose behaviour needs no evaluator state. (`namespace`
/// and `raise_exception` live in the evaluator: one creates per-render
/// state, the other ends the render.)
enum JinjaGlobals {
    /// jinja2's sandbox caps ranges so a template cannot exhaust memory.
    static let maxRange = 100_000

    /// Python `range(stop)` / `range(start, stop[, step])`.
    static func range(_ arguments: CallArguments) throws -> JinjaValue {
        guard arguments.keyword.isEmpty, (1...3).contains(arguments.positional.count) else {
            throw ChatTemplateError(.type, "range() takes 1 to 3 positional arguments")
        }
        let numbers = try arguments.positional.map { value -> Int in
            guard let i = value.integer else {
                throw ChatTemplateError(.type, "'\(value.typeName)' object cannot be interpreted as an integer")
            }
            return i
        }
        let (start, stop, step) =
            numbers.count == 1 ? (0, numbers[0], 1) : (numbers[0], numbers[1], numbers.count == 3 ? numbers[2] : 1)
        guard step != 0 else { throw ChatTemplateError(.value, "range() arg 3 must not be zero") }
        let values = stride(from: start, to: stop, by: step)
        guard values.underestimatedCount <= maxRange else {
            throw ChatTemplateError(.value, "range too big, the sandbox allows at most \(maxRange) items")
        }
        return .array(values.map { .int($0) })
    }

    /// transformers' `strftime_now(format)`: the local time through C's
    /// `strftime`, which is what Python's `datetime.strftime` calls.
    static func strftimeNow(_ arguments: CallArguments) throws -> JinjaValue {
        guard case .string(let format)? = try arguments.bind(["format"], function: "strftime_now")[0] else {
            throw ChatTemplateError(.type, "strftime_now() needs a format string")
        }
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 512)
        let written = strftime(&buffer, buffer.count, format, &parts)
        guard written > 0 || format.isEmpty else {
            throw ChatTemplateError(.value, "strftime_now format produced no output or is too long")
        }
        let bytes = buffer.prefix(written).map { UInt8(bitPattern: $0) }
        return .string(String(decoding: bytes, as: UTF8.self))
    }
}
