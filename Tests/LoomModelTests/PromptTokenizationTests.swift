import LoomModel
import Testing

/// The one rule every entry point tokenizes with, on a vocabulary with
/// ChatML's control tokens: 256 <s>, 257 <|im_start|>, 258 <|im_end|>.
@Suite struct PromptTokenizationTests {
    let chatML = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"

    func tokenizer(addBOS: Bool) throws -> any Tokenizer {
        try SyntheticBPE.tokenizer(
            extra: [("<s>", .control), ("<|im_start|>", .control), ("<|im_end|>", .control)],
            more: ["tokenizer.ggml.bos_token_id": .uint32(256), "tokenizer.ggml.add_bos_token": .bool(addBOS)])
    }

    func bytes(_ text: String) -> [TokenID] { text.utf8.map { TokenID($0) } }

    /// As llama.cpp and vLLM: BOS because the metadata asks, and the
    /// control tokens written in the text are their ids.
    @Test func aRawPromptGetsBOSAndItsControlTokens() throws {
        let ids = try tokenizer(addBOS: true).encode(chatML, as: .rawPrompt())
        #expect(ids == [256, 257] + bytes("user\nhi") + [258] + bytes("\n") + [257] + bytes("assistant\n"))
    }

    @Test func withoutParsingTheControlTokensArePlainText() throws {
        let ids = try tokenizer(addBOS: true).encode(chatML, as: .rawPrompt(parseSpecial: false))
        #expect(ids == [256] + bytes(chatML))
    }

    @Test func aRawPromptGetsNoBOSWhenTheMetadataSaysNot() throws {
        let ids = try tokenizer(addBOS: false).encode(chatML, as: .rawPrompt())
        #expect(ids.first == 257 && !ids.contains(256))
    }

    /// The template writes BOS itself, so a second one must not be added.
    @Test func aRenderedChatIsParsedAndGetsNoBOSAdded() throws {
        let ids = try tokenizer(addBOS: true).encode("<s>" + chatML, as: .renderedChat)
        #expect(ids == [256, 257] + bytes("user\nhi") + [258] + bytes("\n") + [257] + bytes("assistant\n"))
    }
}
