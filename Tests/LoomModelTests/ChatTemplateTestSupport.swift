import Foundation
import LoomModel
import LoomTesting
import Testing

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

/// One template snippet with its context (as JSON, so dict order is
/// explicit) and either jinja2's output or the error code we must raise.
struct JinjaCase: CustomTestStringConvertible, Sendable {
    var label: String
    var template: String
    var context: String
    var expected: String?
    var error: ChatTemplateError.Code?

    var testDescription: String { label }

    init(_ label: String, _ template: String, context: String = "{}", expected: String) {
        (self.label, self.template, self.context, self.expected) = (label, template, context, expected)
    }

    init(_ label: String, _ template: String, context: String = "{}", error: ChatTemplateError.Code) {
        (self.label, self.template, self.context, self.error) = (label, template, context, error)
    }

    func check() throws {
        let variables = try JinjaValue(json: context).objectValue
        let render = { try ChatTemplate(source: template).render(context: variables) }
        if let expected {
            #expect(try render() == expected)
            return
        }
        let thrown = #expect(throws: ChatTemplateError.self) { try render() }
        #expect(thrown?.code == error)
        if let thrown, thrown.code != .raised {
            #expect(thrown.location != nil, "errors should say where: \(thrown.message)")
        }
    }
}
