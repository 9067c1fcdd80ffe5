import Foundation
import LoomModel
import LoomTesting

/// Reading fixture files as template values: they go through the
/// order-preserving JSON parser because dict order shows in `tojson` and
/// `items()` output.
enum TemplateFixtures {
    static func load(_ name: String) throws -> JinjaValue {
        let data = try Fixtures.data("chat_templates/\(name)")
        return try JinjaValue(json: String(decoding: data, as: UTF8.self))
    }
}

extension JinjaValue {
    subscript(key: String) -> JinjaValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var arrayValue: [JinjaValue] {
        if case .array(let items) = self { return items }
        return []
    }

    var objectValue: [String: JinjaValue] {
        guard case .object(let object) = self else { return [:] }
        return Dictionary(uniqueKeysWithValues: object.pairs.compactMap { pair in pair.key.value.stringValue.map { ($0, pair.value) } })
    }
}

/// Renders `source` with `context`, turning any error into text so table
/// tests can compare outcomes in one `#expect`.
func renderOutcome(_ source: String, _ context: [String: JinjaValue] = [:]) -> String {
    do {
        return try ChatTemplate(source: source).render(context: context)
    } catch let error as ChatTemplateError {
        return "ERROR \(error.code): \(error.message)"
    } catch {
        return "ERROR \(error)"
    }
}
