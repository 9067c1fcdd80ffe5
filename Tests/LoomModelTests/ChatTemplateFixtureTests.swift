import LoomModel
import Testing

/// Golden renders of real models' chat templates, produced by jinja2 3.1.6
/// configured as transformers configures it (see each fixture's "render").
struct TemplateFixtureCase: CustomTestStringConvertible, Sendable {
    var file: String
    var name: String
    var template: String
    var bosToken: String
    var eosToken: String
    var messages: JinjaValue
    var addGenerationPrompt: Bool
    var context: [String: JinjaValue]
    var expected: String?
    var expectedError: String?

    var testDescription: String { "\(file): \(name)" }

    static let files = ["smollm2.json", "llama3.json", "qwen2.5.json", "mistral.json"]

    static func loadAll() throws -> [TemplateFixtureCase] {
        try files.flatMap { file -> [TemplateFixtureCase] in
            let fixture = try TemplateFixtures.load(file)
            return fixture["cases"]!.arrayValue.map { item in
                TemplateFixtureCase(
                    file: file, name: item["name"]!.stringValue!, template: fixture["template"]!.stringValue!,
                    bosToken: fixture["bos_token"]!.stringValue!, eosToken: fixture["eos_token"]!.stringValue!,
                    messages: item["messages"]!, addGenerationPrompt: item["add_generation_prompt"] == .bool(true),
                    context: item["context"]?.objectValue ?? [:], expected: item["expected"]?.stringValue,
                    expectedError: item["expected_error"]?.stringValue)
            }
        }
    }

    static let all: [TemplateFixtureCase] = (try? loadAll()) ?? []

    /// Messages as the public API takes them, or nil when a message carries
    /// more than role and content (tool calls), which go in via `extra`.
    var chatMessages: [ChatMessage]? {
        var result: [ChatMessage] = []
        for message in messages.arrayValue {
            let fields = message.objectValue
            guard fields.count == 2, let role = fields["role"]?.stringValue, let content = fields["content"]?.stringValue
            else { return nil }
            result.append(ChatMessage(role: role, content: content))
        }
        return result
    }
}

@Test func chatTemplateFixturesLoad() throws {
    let cases = try TemplateFixtureCase.loadAll()
    #expect(cases.count >= 30)
    #expect(Set(cases.map(\.file)) == Set(TemplateFixtureCase.files))
}

@Test(arguments: TemplateFixtureCase.all)
func chatTemplateRendersLikeJinja2(_ fixture: TemplateFixtureCase) throws {
    let template = try ChatTemplate(source: fixture.template)
    var extra = fixture.context
    let messages = fixture.chatMessages ?? []
    if fixture.chatMessages == nil { extra["messages"] = fixture.messages }
    let render = {
        try template.render(
            messages: messages, addGenerationPrompt: fixture.addGenerationPrompt,
            bosToken: fixture.bosToken, eosToken: fixture.eosToken, extra: extra)
    }
    if let expected = fixture.expected {
        #expect(try render() == expected)
    } else {
        let error = #expect(throws: ChatTemplateError.self) { try render() }
        #expect(error?.code == .raised)
        #expect(error?.message == fixture.expectedError)
    }
}
