import Foundation
import LoomModel
import Testing

@Suite struct ChatTemplateAPITests {
    @Test func renderProvidesTransformersVariables() throws {
        let template = try ChatTemplate(
            source: "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                + "{{ tools is none }}{{ documents is none }}{% if add_generation_prompt %}>{% endif %}{{ eos_token }}")
        let messages = [ChatMessage(role: "user", content: "hi")]
        let out = try template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
        #expect(out == "<s>[user:hi]TrueTrue></s>")
    }

    @Test func extraVariablesAddAndOverride() throws {
        let template = try ChatTemplate(source: "{{ date_string }}|{{ tools | length }}|{{ bos_token }}")
        let out = try template.render(
            messages: [], addGenerationPrompt: false, bosToken: "<s>",
            extra: ["date_string": "01 Jan 2025", "tools": [["name": "f"]], "bos_token": "B"])
        #expect(out == "01 Jan 2025|1|B")
    }

    @Test func renderingIsRepeatableAndConcurrent() async throws {
        let template = try ChatTemplate(
            source: "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}")
        let messages = Array(repeating: ChatMessage(role: "user", content: "x"), count: 3)
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 {
                group.addTask { try template.render(messages: messages, addGenerationPrompt: false) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outputs == Array(repeating: "3", count: 8))
    }

    @Test func raiseExceptionCarriesTheTemplateMessageVerbatim() throws {
        let template = try ChatTemplate(source: "{% if messages | length == 0 %}{{ raise_exception('Need a message!') }}{% endif %}")
        let error = #expect(throws: ChatTemplateError.self) {
            try template.render(messages: [], addGenerationPrompt: false)
        }
        #expect(error?.code == .raised)
        #expect(error?.message == "Need a message!")
        #expect(error?.description == "chat template raised error: Need a message!")
    }

    @Test func syntaxErrorsNameLineAndColumn() {
        let error = #expect(throws: ChatTemplateError.self) {
            try ChatTemplate(source: "line one\n{% if x %}\n  {{ x + }}\n{% endif %}")
        }
        #expect(error?.code == .syntax)
        #expect(error?.location == TemplateLocation(line: 3, column: 10))
        #expect(error?.message.hasSuffix("at 3:10") == true)
    }

    @Test(arguments: [
        ("{% include 'other.jinja' %}", "include"),
        ("{% extends 'base.jinja' %}", "extends"),
        ("{% import 'm.jinja' as m %}", "import"),
        ("{% from 'm.jinja' import f %}", "from"),
        ("{% macro w() %}{{ caller() }}{% endmacro %}{% call w() %}x{% endcall %}", "call"),
        ("{% block body %}x{% endblock %}", "block"),
        ("{% for x in xs recursive %}{{ loop(x) }}{% endfor %}", "recursive"),
        ("{{ x | wordwrap }}", "wordwrap"),
        ("{{ x is nosuchtest }}", "nosuchtest"),
        ("{{ f(*args) }}", "*args"),
    ])
    func unsupportedConstructsAreRefusedAtParse(source: String, construct: String) {
        let error = #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: source) }
        #expect(error?.code == .unsupported)
        #expect(error?.message.contains(construct) == true, "\(error?.message ?? "")")
        #expect(error?.location?.line == 1)
    }

    /// jinja2 only checks filter names outside `if` at compile time, so a
    /// guarded optional filter must not stop the template from loading.
    @Test func unknownFilterInsideIfFailsOnlyWhenReached() throws {
        let template = try ChatTemplate(source: "{% if x %}{{ x | from_json }}{% endif %}ok")
        #expect(try template.render(context: [:]) == "ok")
        let error = #expect(throws: ChatTemplateError.self) { try template.render(context: ["x": "{}"]) }
        #expect(error?.code == .unsupported)
        #expect(error?.location == TemplateLocation(line: 1, column: 18))
    }

    @Test func undefinedErrorsNameTheExpression() throws {
        let template = try ChatTemplate(source: "{{ messages[0].tool_calls[0].function }}")
        let error = #expect(throws: ChatTemplateError.self) {
            try template.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false)
        }
        #expect(error?.code == .undefined)
        #expect(error?.message == "'messages[0].tool_calls' is undefined at 1:15")
    }

    @Test func strftimeNowFormatsTheCurrentDate() throws {
        let out = try ChatTemplate(source: "{{ strftime_now('%Y') }}").render(context: [:])
        #expect(out.count == 4 && Int(out)! >= 2024)
    }

    @Test func chatMessageIsCodable() throws {
        let message = ChatMessage(role: "assistant", content: "hé\n")
        let decoded = try JSONDecoder().decode(ChatMessage.self, from: JSONEncoder().encode(message))
        #expect(decoded == message)
    }
}

@Suite struct JinjaJSONTests {
    @Test func parsesInOrderWithPythonNumberTypes() throws {
        let value = try JinjaValue(json: #"{"z": 1, "a": [1.5, true, null, "\u00e9\ud83e\udd99\n"], "m": {}}"#)
        guard case .object(let object) = value else {
            Issue.record("expected an object")
            return
        }
        #expect(object.keys == ["z", "a", "m"])
        #expect(object["z"] == .int(1))
        #expect(object["a"] == [.double(1.5), .bool(true), .none, .string("é🦙\n")])
        #expect(object["m"] == .object(JinjaObject()))
    }

    @Test(arguments: ["{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "1 2"])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: ChatTemplateError.self) { try JinjaValue(json: text) }
    }

    @Test func roundTripsThroughTojson() throws {
        let text = #"{"name": "f", "parameters": {"type": "object", "required": ["city"], "n": -2, "x": 0.5}}"#
        let out = try ChatTemplate(source: "{{ v | tojson }}").render(context: ["v": try JinjaValue(json: text)])
        #expect(out == text)
    }
}
