/// Special tokens llama.cpp recognises by their text rather than by metadata.
/// Converters rarely record end-of-turn or fill-in-the-middle ids, so
/// llama.cpp looks for the spellings below; a token found this way is made a
/// control token (so it is split out of text and printed verbatim) and the
/// end-of-turn ones stop generation. Lists are in Loom's order of preference
/// where a vocabulary holds several spellings.
enum KnownSpecialTokens {
    static let endOfTurn = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
    ]
    static let endOfMessage = ["<|eom_id|>"]
    static let fimPrefix = ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"]
    static let fimSuffix = ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"]
    static let fimMiddle = ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"]
    static let fimPad = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
    static let fimRepository = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
    static let fimSeparator = ["<|file_sep|>"]
    /// Tokens that end generation wherever they appear in a vocabulary.
    static let endOfGeneration = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
    ]
    /// gpt-oss markers llama.cpp always prints, even when special tokens are hidden.
    static let alwaysRendered = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]

    static var allNames: Set<String> {
        Set(endOfTurn + endOfMessage + fimPrefix + fimSuffix + fimMiddle + fimPad + fimRepository + fimSeparator
            + endOfGeneration + alwaysRendered)
    }
}

extension Vocabulary {
    /// Finds the text-recognised special tokens and builds `endOfGenerationIDs`,
    /// in the order llama.cpp's loader does, since later steps override earlier ones.
    mutating func resolveSpecialTokens(_ reader: VocabularyMetadata) throws {
        let found = idsOfKnownNames()
        func first(_ names: [String]) -> TokenID? { names.lazy.compactMap { found[$0]?.first }.first }
        func metadataID(_ key: String) throws -> TokenID? { try reader.tokenID(key, default: nil, count: tokens.count) }
        func detect(_ id: TokenID?, _ names: [String]) -> TokenID? {
            if let id { return id }
            guard let detected = first(names) else { return nil }
            promoteToControl(detected)
            return detected
        }

        // The deprecated prefix/suffix/middle keys win over fim_*, as llama.cpp reads them last.
        eotID = detect(eotID, KnownSpecialTokens.endOfTurn)
        let eom = detect(try metadataID("tokenizer.ggml.eom_token_id"), KnownSpecialTokens.endOfMessage)
        _ = detect(try metadataID("tokenizer.ggml.prefix_token_id") ?? metadataID("tokenizer.ggml.fim_pre_token_id"),
                   KnownSpecialTokens.fimPrefix)
        _ = detect(try metadataID("tokenizer.ggml.suffix_token_id") ?? metadataID("tokenizer.ggml.fim_suf_token_id"),
                   KnownSpecialTokens.fimSuffix)
        _ = detect(try metadataID("tokenizer.ggml.middle_token_id") ?? metadataID("tokenizer.ggml.fim_mid_token_id"),
                   KnownSpecialTokens.fimMiddle)
        let fimPad = detect(try metadataID("tokenizer.ggml.fim_pad_token_id"), KnownSpecialTokens.fimPad)
        let fimRepository = detect(try metadataID("tokenizer.ggml.fim_rep_token_id"), KnownSpecialTokens.fimRepository)
        let fimSeparator = detect(try metadataID("tokenizer.ggml.fim_sep_token_id"), KnownSpecialTokens.fimSeparator)

        var stops = Set([fimPad, fimRepository, fimSeparator].compactMap { $0 })
        for name in KnownSpecialTokens.endOfGeneration {
            for id in found[name] ?? [] {
                stops.insert(id)
                promoteToControl(id)
            }
        }
        for name in KnownSpecialTokens.alwaysRendered {
            for id in found[name] ?? [] { types[Int(id)] = .userDefined }
        }
        stops.formUnion([eosID, eotID, eom].compactMap { $0 })
        endOfGenerationIDs = stops
        dropHarmonyEnd(found)
        dropGemmaSentenceEnd(found)
    }

    /// Ids of every token spelled like one of the known names, in id order.
    private func idsOfKnownNames() -> [String: [TokenID]] {
        var table = ByteStringTable(capacity: 128)
        let names = Array(KnownSpecialTokens.allNames)
        for (index, name) in names.enumerated() { table.insert(name.utf8, value: Int32(index)) }
        var found: [String: [TokenID]] = [:]
        for (id, token) in tokens.enumerated() {
            var text = token
            let index = text.withUTF8 { table.find($0) }
            if let index { found[names[Int(index)], default: []].append(TokenID(id)) }
        }
        return found
    }

    private mutating func promoteToControl(_ id: TokenID) {
        types[Int(id)] = .control
    }

    /// gpt-oss (and solar-open) end a message with <|end|> but keep talking
    /// after it, so llama.cpp does not stop there when <|return|>/<|call|> exist.
    private mutating func dropHarmonyEnd(_ found: [String: [TokenID]]) {
        func isStop(_ name: String) -> Bool { (found[name] ?? []).contains(where: endOfGenerationIDs.contains) }
        guard let end = (found["<|end|>"] ?? []).first(where: endOfGenerationIDs.contains) else { return }
        let call = isStop("<|call|>") || isStop("<|calls|>")
        if (isStop("<|return|>") && call) || (call && isStop("<|flush|>")) {
            endOfGenerationIDs.remove(end)
            types[Int(end)] = .userDefined
        }
    }

    /// Gemma 4 and PaddleOCR write </s> inside tool output; it is not an end there.
    private mutating func dropGemmaSentenceEnd(_ found: [String: [TokenID]]) {
        guard (found["<|tool_response>"] ?? []).contains(where: endOfGenerationIDs.contains),
              let sentenceEnd = (found["</s>"] ?? []).first(where: endOfGenerationIDs.contains) else { return }
        endOfGenerationIDs.remove(sentenceEnd)
        types[Int(sentenceEnd)] = .normal
    }
}
