import Foundation
import Yams

/// A YAML mapping read key by key, each value checked for its type and range,
/// every problem reported at the line and column of the node that has it.
///
/// Built on Yams' `Node` tree rather than `Decodable` because only the tree
/// keeps each value's `mark`: a decoding error knows a coding path, not a
/// line, and a person fixing a config needs the line.
struct YAMLSection {
    let file: String
    /// The dotted path of this mapping (`router`, `workers[1]`), empty for
    /// the document root.
    let path: String
    /// Where the mapping's own key is, for "missing key" errors.
    let mark: Mark?
    private var entries: [String: (key: Node, value: Node)] = [:]

    init(_ node: Node, path: String, mark: Mark?, allowed: [String], file: String) throws(ConfigError) {
        self.file = file
        self.path = path
        self.mark = mark
        guard let mapping = node.mapping else {
            throw Self.error(.wrongType, file, node.mark, "\(path.isEmpty ? "the document" : path) must be a mapping of keys, got \(Self.describe(node))")
        }
        for (key, value) in mapping {
            guard let name = key.scalar?.string, allowed.contains(name) else {
                let place = path.isEmpty ? "at the top level" : "in \(path)"
                throw Self.error(.unknownKey, file, key.mark, "unknown key \(Self.describe(key)) \(place); allowed keys: \(allowed.joined(separator: ", "))")
            }
            entries[name] = (key, value)
        }
    }

    // MARK: Values

    func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value under `key`, or nil when the key is absent or has no value
    /// (`key:`, `key: ~`), which YAML treats alike.
    func node(_ key: String) -> Node? {
        guard let value = entries[key]?.value else { return nil }
        return value.scalar.flatMap(NSNull.construct) == nil ? value : nil
    }

    func keyMark(_ key: String) -> Mark? { entries[key]?.key.mark }

    func valueMark(_ key: String) -> Mark? { entries[key]?.value.mark ?? mark }

    /// Any scalar reads as a string: `cpus: 0` means the CPU list "0".
    func string(_ key: String) throws(ConfigError) -> String? {
        guard let node = node(key) else { return nil }
        guard let scalar = node.scalar else {
            throw error(.wrongType, node.mark, "\(qualified(key)) must be a string, got \(Self.describe(node))")
        }
        return scalar.string
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let node = node(key) else { return nil }
        guard let value = node.scalar.flatMap(Int.construct) else {
            throw error(.wrongType, node.mark, "\(qualified(key)) must be an integer, got \(Self.describe(node))")
        }
        try check(key, value, in: range)
        return value
    }

    func double(_ key: String, in range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let node = node(key) else { return nil }
        guard let value = node.scalar.flatMap(Double.construct), value.isFinite else {
            throw error(.wrongType, node.mark, "\(qualified(key)) must be a number, got \(Self.describe(node))")
        }
        try check(key, value, in: range)
        return value
    }

    func choice<Value: RawRepresentable & CaseIterable>(_ key: String, of _: Value.Type) throws(ConfigError) -> Value?
    where Value.RawValue == String {
        try choice(key, among: Array(Value.allCases))
    }

    /// The value of `key`, which must be the raw value of one of `values`.
    func choice<Value: RawRepresentable>(_ key: String, among values: [Value]) throws(ConfigError) -> Value?
    where Value.RawValue == String {
        guard let text = try string(key) else { return nil }
        guard let value = values.first(where: { $0.rawValue == text }) else {
            let names = values.map(\.rawValue).joined(separator: ", ")
            throw error(.wrongType, valueMark(key), "\(qualified(key)) must be one of \(names), got '\(text)'")
        }
        return value
    }

    /// `value`, or a "missing key" error naming `key` when it is nil.
    func required<Value>(_ key: String, _ value: Value?) throws(ConfigError) -> Value {
        if let value { return value }
        if let keyMark = keyMark(key) {
            throw error(.missingKey, keyMark, "\(qualified(key)) needs a value")
        }
        let place = path.isEmpty ? "at the top level" : "in \(path)"
        throw error(.missingKey, mark, "missing required key '\(key)' \(place)")
    }

    // MARK: Errors

    func error(_ kind: ConfigError.Kind, _ at: Mark?, _ message: String) -> ConfigError {
        Self.error(kind, file, at, message)
    }

    static func error(_ kind: ConfigError.Kind, _ file: String, _ at: Mark?, _ message: String) -> ConfigError {
        ConfigError(kind, file: file, line: at?.line ?? 1, column: at?.column ?? 1, message)
    }

    /// A node as a message quotes it: a scalar's text, or what kind of
    /// collection stood where a scalar belonged.
    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): "'\(scalar.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    private func check<Value: Comparable>(_ key: String, _ value: Value, in range: ClosedRange<Value>) throws(ConfigError) {
        guard range.contains(value) else {
            throw error(.outOfRange, valueMark(key), "\(qualified(key)) must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
    }
}
