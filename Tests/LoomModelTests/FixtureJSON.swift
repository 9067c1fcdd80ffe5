import Foundation
import LoomTesting

/// Untyped JSON, decoded so that integers stay exact: the fixtures hold
/// 64-bit values beyond 2^53, which a trip through Double would round.
enum FixtureJSON: Decodable, Sendable {
    case bool(Bool)
    case uint(UInt64)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([FixtureJSON])
    case object([String: FixtureJSON])
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            // The decoder reads "-0.0" as the integer 0 too; only a double
            // keeps its sign, and -0.0 appears in the dequantized values.
            if value == 0, value.sign == .minus {
                self = .double(value)
            } else if let exact = try? container.decode(UInt64.self) {
                self = .uint(exact)
            } else if let exact = try? container.decode(Int64.self) {
                self = .int(exact)
            } else {
                self = .double(value)
            }
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([FixtureJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: FixtureJSON].self))
        }
    }

    static func load(_ relativePath: String) throws -> FixtureJSON {
        try JSONDecoder().decode(FixtureJSON.self, from: Fixtures.data(relativePath))
    }

    subscript(key: String) -> FixtureJSON {
        if case .object(let fields) = self, let value = fields[key] { return value }
        return .null
    }

    var array: [FixtureJSON] { if case .array(let v) = self { v } else { [] } }
    var string: String? { if case .string(let v) = self { v } else { nil } }
    var keys: [String] { if case .object(let v) = self { Array(v.keys) } else { [] } }

    var double: Double? {
        switch self {
        case .uint(let v): Double(v)
        case .int(let v): Double(v)
        case .double(let v): v
        default: nil
        }
    }

    var int: Int? {
        switch self {
        case .uint(let v): Int(exactly: v)
        case .int(let v): Int(exactly: v)
        case .double(let v): Int(exactly: v)
        default: nil
        }
    }

    /// The fixtures write float32 values widened to double, so converting
    /// back is exact.
    var floats: [Float] { array.compactMap { $0.double.map(Float.init) } }
    var ints: [Int] { array.compactMap(\.int) }
}
