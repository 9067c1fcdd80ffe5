import LoomModel
import Testing

/// Single constructs checked against jinja2's output for the same snippet
/// (Tests/Fixtures/chat_templates/constructs.json).
struct ConstructCase: CustomTestStringConvertible, Sendable {
    var name: String
    var template: String
    var context: [String: JinjaValue]
    var expected: String?
    var expectedError: String?

    var testDescription: String { name }

    static let all: [ConstructCase] = {
        guard let fixture = try? TemplateFixtures.load("constructs.json") else { return [] }
        return fixture["constructs"]!.arrayValue.map { item in
            ConstructCase(
                name: item["name"]!.stringValue!, template: item["template"]!.stringValue!,
                context: item["context"]?.objectValue ?? [:], expected: item["expected"]?.stringValue,
                expectedError: item["expected_error"]?.stringValue)
        }
    }()
}

/// Constructs jinja2 has that chat templates rarely need. Those listed in
/// `supported` must match jinja2's output; the rest must be refused with
/// `.unsupported` when the template is parsed, never rendered wrongly.
struct OptionalConstructCase: CustomTestStringConvertible, Sendable {
    var construct: String
    var template: String
    var jinja2Output: String?

    var testDescription: String { construct }

    static let supported: Set<String> = ["raw", "macro", "filter_block", "with"]

    static let all: [OptionalConstructCase] = {
        guard let fixture = try? TemplateFixtures.load("constructs.json") else { return [] }
        return fixture["unsupported"]!.arrayValue.map { item in
            OptionalConstructCase(
                construct: item["construct"]!.stringValue!, template: item["template"]!.stringValue!,
                jinja2Output: item["jinja2_output"]?.stringValue)
        }
    }()
}

@Test func constructFixturesLoad() {
    #expect(ConstructCase.all.count >= 30)
    #expect(OptionalConstructCase.all.count >= 5)
}

@Test(arguments: ConstructCase.all)
func chatTemplateConstructMatchesJinja2(_ construct: ConstructCase) throws {
    let template = try ChatTemplate(source: construct.template)
    if let expected = construct.expected {
        #expect(try template.render(context: construct.context) == expected)
    } else {
        let error = #expect(throws: ChatTemplateError.self) { try template.render(context: construct.context) }
        #expect(error?.code == .raised)
        #expect(error?.message == construct.expectedError)
    }
}

@Test(arguments: OptionalConstructCase.all)
func chatTemplateOptionalConstruct(_ construct: OptionalConstructCase) throws {
    if OptionalConstructCase.supported.contains(construct.construct) {
        let output = try ChatTemplate(source: construct.template).render(context: [:])
        #expect(output == construct.jinja2Output)
    } else {
        let error = #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: construct.template) }
        #expect(error?.code == .unsupported)
        #expect(error?.message.contains("1:") == true, "error should name the line:column")
    }
}
