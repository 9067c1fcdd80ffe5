/// One message of a conversation, as a chat template sees it.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A model's own `tokenizer.chat_template`, parsed once and rendered into
/// the exact prompt text transformers' `apply_chat_template` would produce.
///
/// Implements the Jinja subset real chat templates use, with jinja2's
/// semantics under transformers' settings (trim_blocks, lstrip_blocks,
/// loop controls, its `tojson`, `raise_exception` and `strftime_now`).
/// Constructs outside that subset fail at init with `.unsupported`, so a
/// model whose template cannot be rendered faithfully is caught at load.
public struct ChatTemplate: Sendable {
    private let nodes: [Node]
    private let macros: [MacroDefinition]

    public init(source: String) throws {
        let tokens = try JinjaLexer.tokenize(source)
        (nodes, macros) = try JinjaParser.parse(tokens)
    }

    /// Renders a conversation. The context matches what transformers passes:
    /// `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, and
    /// `tools` / `documents` defined as none (templates test
    /// `tools is not none`). `extra` adds or overrides variables, e.g.
    /// `tools`, `date_string` or other special tokens.
    public func render(
        messages: [ChatMessage], addGenerationPrompt: Bool,
        bosToken: String = "", eosToken: String = "",
        extra: [String: JinjaValue] = [:]
    ) throws -> String {
        var context: [String: JinjaValue] = [
            "messages": .array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
            "tools": .none,
            "documents": .none,
        ]
        context.merge(extra) { _, override in override }
        return try render(context: context)
    }

    /// Renders with exactly the given variables, for callers (and tests)
    /// that build the context themselves.
    public func render(context: [String: JinjaValue]) throws -> String {
        try JinjaEvaluator(macros: macros, context: context).render(nodes)
    }
}
