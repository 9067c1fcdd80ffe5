import Foundation
import LoomEngine
import LoomModel

/// What the HTTP layer needs of one served model, frozen into a `Sendable`
/// value: the backend that runs it (an engine here, or workers elsewhere)
/// and the tokenizer and chat template that turn requests into prompts.
public struct ServedModel: Sendable {
    /// The id clients send as `model`; the file name without `.gguf`.
    public let name: String
    public let backend: any GenerationBackend
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate?
    public let contextLength: Int
    let bosToken: String
    let eosToken: String
    let jsonTokens: JSONTokenTable

    public init(model: LanguageModel, engine: InferenceEngine, name: String? = nil) {
        self.init(path: model.path, tokenizer: model.tokenizer, chatTemplate: model.chatTemplate,
                  contextLength: engine.contextLength, backend: engine, name: name)
    }

    /// For a front end without weights (the router): only the tokenizer
    /// and template are local; `backend` runs the model elsewhere.
    public init(path: String, tokenizer: any Tokenizer, chatTemplate: ChatTemplate?, contextLength: Int,
                backend: any GenerationBackend, name: String? = nil) {
        self.name = name ?? Self.defaultName(path: path)
        self.backend = backend
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.contextLength = contextLength
        let v = tokenizer.vocabulary
        bosToken = v.bosID.map { v.tokens[Int($0)] } ?? ""
        eosToken = v.eosID.map { v.tokens[Int($0)] } ?? ""
        jsonTokens = JSONTokenTable(tokenizer: tokenizer)
    }

    /// The id clients send as `model` unless told otherwise: the file name
    /// without `.gguf`.
    public static func defaultName(path: String) -> String {
        URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    }

    var stopTokens: Set<TokenID> { tokenizer.vocabulary.endOfGenerationIDs }

    /// The tokens a pinned prefix stands for: `text` as a chat's system
    /// message (rendered as every chat that starts with it begins), or as
    /// the start of a raw completion prompt.
    public func prefixTokens(_ text: String, asSystemMessage: Bool) throws -> [TokenID] {
        guard asSystemMessage else { return try tokenizer.encode(text, as: .rawPrompt(parseSpecial: true)) }
        guard let chatTemplate else {
            throw APIError(.badRequest, code: "no_chat_template", "model \(name) has no chat template; pin the text as a raw prompt")
        }
        let rendered = try chatTemplate.render(messages: [ChatMessage(role: "system", content: text)], addGenerationPrompt: false,
                                               bosToken: bosToken, eosToken: eosToken)
        return try tokenizer.encode(rendered, as: .renderedChat)
    }

    func renderChat(_ messages: [ChatMessage]) throws -> String {
        guard let chatTemplate else {
            throw APIError(.badRequest, code: "no_chat_template", "model \(name) has no chat template; use /v1/completions with a raw prompt")
        }
        return try chatTemplate.render(messages: messages, addGenerationPrompt: true, bosToken: bosToken, eosToken: eosToken)
    }
}
