/// How text becomes a prompt's token ids. Every entry point (`loom generate`,
/// `loom tokenize`, `/v1/completions` and `/v1/chat/completions`, in one
/// process or behind the router) picks one of these rather than passing
/// `encode`'s flags itself: when each passed its own, they drifted, and a raw
/// ChatML prompt got control tokens from `loom tokenize` but plain text from
/// `loom generate` and the completions endpoint.
public struct PromptTokenization: Sendable, Equatable {
    /// BOS/EOS where the vocabulary's metadata (`tokenizer.ggml.add_bos_token`,
    /// `add_eos_token`) asks for them.
    public var addSpecial: Bool
    /// Control tokens written in the text (`<|im_start|>`) become their ids;
    /// otherwise they are tokenized as the characters they are spelled with.
    public var parseSpecial: Bool

    public init(addSpecial: Bool, parseSpecial: Bool) {
        self.addSpecial = addSpecial
        self.parseSpecial = parseSpecial
    }

    /// A raw prompt, tokenized as llama.cpp (llama-cli, llama-server's
    /// completions) and vLLM tokenize one: BOS if the model asks for it, and
    /// control tokens parsed, so a hand-written ChatML prompt reaches the
    /// model as its chat template would have built it. Turn parsing off for
    /// text whose author must not be able to forge turns or end markers.
    public static func rawPrompt(parseSpecial: Bool = true) -> PromptTokenization {
        PromptTokenization(addSpecial: true, parseSpecial: parseSpecial)
    }

    /// A chat template's output. The template writes BOS and the turn
    /// markers itself, so nothing is added and its markers must be parsed.
    public static let renderedChat = PromptTokenization(addSpecial: false, parseSpecial: true)
}

extension Tokenizer {
    public func encode(_ text: String, as rule: PromptTokenization) throws -> [TokenID] {
        try encode(text, addSpecial: rule.addSpecial, parseSpecial: rule.parseSpecial)
    }
}
