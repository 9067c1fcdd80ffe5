import LoomModel
import Testing

/// Builds small byte-level BPE vocabularies in code: ids 0...255 are the 256
/// GPT-2 byte characters (id == byte value), then the extra tokens in order.
enum SyntheticBPE {
    /// GPT-2's byte → character map, written out independently of Loom's.
    static func character(for byte: Int) -> String {
        let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
        if printable { return String(UnicodeScalar(UInt8(byte))) }
        let shifted = (0..<byte).filter { !((0x21...0x7E).contains($0) || (0xA1...0xAC).contains($0) || (0xAE...0xFF).contains($0)) }.count
        return String(UnicodeScalar(UInt32(256 + shifted))!)
    }

    static func metadata(
        extra: [(String, Vocabulary.TokenType)] = [], merges: [String] = [], pre: String = "gpt2",
        more: [String: GGUFValue] = [:]
    ) -> [String: GGUFValue] {
        let tokens = (0..<256).map(character(for:)) + extra.map(\.0)
        let types = Array(repeating: Vocabulary.TokenType.normal, count: 256) + extra.map(\.1)
        var metadata: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"),
            "tokenizer.ggml.pre": .string(pre),
            "tokenizer.ggml.tokens": .array(tokens.map(GGUFValue.string)),
            "tokenizer.ggml.token_type": .array(types.map { .int32($0.rawValue) }),
            "tokenizer.ggml.merges": .array(merges.map(GGUFValue.string)),
        ]
        metadata.merge(more) { _, new in new }
        return metadata
    }

    static func tokenizer(
        extra: [(String, Vocabulary.TokenType)] = [], merges: [String] = [], pre: String = "gpt2",
        more: [String: GGUFValue] = [:]
    ) throws -> any Tokenizer {
        try Tokenizers.make(Vocabulary(metadata: metadata(extra: extra, merges: merges, pre: pre, more: more), path: "synthetic"))
    }

    static func byte(_ character: Character) -> TokenID { TokenID(character.asciiValue!) }
}

@Suite("Byte-level BPE tokenizer")
struct TokenizerBPETests {
    @Test func lowerRankMergesFirst() throws {
        // "a b" ranks before "b c": abc → ab + c.
        let first = try SyntheticBPE.tokenizer(extra: [("ab", .normal), ("bc", .normal)], merges: ["a b", "b c"])
        #expect(try first.encode("abc", addSpecial: false, parseSpecial: false) == [256, SyntheticBPE.byte("c")])
        let second = try SyntheticBPE.tokenizer(extra: [("ab", .normal), ("bc", .normal)], merges: ["b c", "a b"])
        #expect(try second.encode("abc", addSpecial: false, parseSpecial: false) == [SyntheticBPE.byte("a"), 257])
    }

    @Test func equalRanksMergeLeftmostFirst() throws {
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("aa", .normal)], merges: ["a a"])
        #expect(try tokenizer.encode("aaa", addSpecial: false, parseSpecial: false) == [256, SyntheticBPE.byte("a")])
        #expect(try tokenizer.encode("aaaa", addSpecial: false, parseSpecial: false) == [256, 256])
    }

    @Test func mergesBuildWordsThroughSpaceCharacter() throws {
        // "Ġ" is how byte-level vocabularies spell a space.
        let tokenizer = try SyntheticBPE.tokenizer(
            extra: [("he", .normal), ("ll", .normal), ("hell", .normal), ("hello", .normal), ("Ġhello", .normal)],
            merges: ["h e", "l l", "he ll", "hell o", "Ġ hello"])
        let ids = try tokenizer.encode("hello hello", addSpecial: false, parseSpecial: false)
        #expect(ids == [259, 260])
        #expect(tokenizer.piece(260) == Array(" hello".utf8))
        #expect(tokenizer.decode(ids) == "hello hello")
    }

    /// A merge whose result is not a token still happens (llama.cpp looks
    /// merges up by their two halves); the finished symbol then falls back to
    /// single-byte tokens, which here hides the "yz" merge.
    @Test func mergeResultMissingFromVocabularyFallsBackToBytes() throws {
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("yz", .normal)], merges: ["x y", "y z"])
        #expect(try tokenizer.encode("xyz", addSpecial: false, parseSpecial: false) == [120, 121, 122])
    }

    @Test func controlTokensAreSplitOnlyWhenParsingSpecial() throws {
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("<|im_start|>", .control), ("<tool>", .userDefined)])
        #expect(try tokenizer.encode("a<|im_start|>b", addSpecial: false, parseSpecial: true) == [97, 256, 98])
        let plain = try tokenizer.encode("a<|im_start|>b", addSpecial: false, parseSpecial: false)
        #expect(plain.count > 3 && !plain.contains(256))
        // User-defined tokens are split out either way, as in llama.cpp.
        #expect(try tokenizer.encode("x<tool>y", addSpecial: false, parseSpecial: false) == [120, 257, 121])
    }

    @Test func longerSpecialTokensWin() throws {
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("<|im", .userDefined), ("<|im_start|>", .control)])
        #expect(try tokenizer.encode("<|im_start|><|im", addSpecial: false, parseSpecial: true) == [257, 256])
    }

    @Test func addsBOSAndEOSWhenTheVocabularyAsks() throws {
        let more: [String: GGUFValue] = [
            "tokenizer.ggml.bos_token_id": .uint32(256), "tokenizer.ggml.eos_token_id": .uint32(257),
            "tokenizer.ggml.add_bos_token": .bool(true), "tokenizer.ggml.add_eos_token": .bool(true),
        ]
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("<s>", .control), ("</s>", .control)], more: more)
        #expect(try tokenizer.encode("a", addSpecial: true, parseSpecial: false) == [256, 97, 257])
        #expect(try tokenizer.encode("a", addSpecial: false, parseSpecial: false) == [97])
        #expect(try tokenizer.encode("", addSpecial: true, parseSpecial: false) == [256, 257])
    }

    @Test func llama3FamilyAddsBOSByDefaultAndTakesWholeWords() throws {
        let more: [String: GGUFValue] = ["tokenizer.ggml.bos_token_id": .uint32(257)]
        // No merges at all, yet "cat" is a token: llama-bpe takes it whole.
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("cat", .normal), ("<|begin_of_text|>", .control)], pre: "llama-bpe", more: more)
        #expect(tokenizer.vocabulary.addBOS)
        #expect(try tokenizer.encode("cat", addSpecial: true, parseSpecial: false) == [257, 256])
        let gpt2 = try SyntheticBPE.tokenizer(extra: [("cat", .normal)])
        #expect(try gpt2.encode("cat", addSpecial: true, parseSpecial: false) == [99, 97, 116])
    }

    @Test func piecesFollowTokenTypes() throws {
        let tokenizer = try SyntheticBPE.tokenizer(extra: [("<|endoftext|>", .control), ("<unused0>", .unused), ("ĠĠ", .normal)])
        #expect(tokenizer.piece(256) == Array("<|endoftext|>".utf8))
        #expect(tokenizer.piece(257) == [])
        #expect(tokenizer.piece(258) == [0x20, 0x20])
        #expect(tokenizer.piece(10) == [0x0A])  // "Ċ"
        #expect(tokenizer.piece(-1) == [] && tokenizer.piece(9999) == [])
    }

    @Test func endOfGenerationFollowsLlamaCpp() throws {
        let more: [String: GGUFValue] = ["tokenizer.ggml.eos_token_id": .uint32(256)]
        // <|im_end|> stored as a normal token is promoted to control, as llama.cpp does.
        let tokenizer = try SyntheticBPE.tokenizer(
            extra: [("<|endoftext|>", .control), ("<|im_end|>", .normal), ("<|fim_pad|>", .control)], more: more)
        let vocabulary = tokenizer.vocabulary
        #expect(vocabulary.eosID == 256)
        #expect(vocabulary.eotID == 257)
        #expect(vocabulary.types[257] == .control)
        #expect(vocabulary.endOfGenerationIDs == [256, 257, 258])
        #expect(try tokenizer.encode("<|im_end|>", addSpecial: false, parseSpecial: true) == [257])
    }

    @Test func badVocabulariesAreReportedByKey() throws {
        var metadata = SyntheticBPE.metadata()
        metadata["tokenizer.ggml.tokens"] = nil
        let missing = #expect(throws: GGUFError.self) { try Vocabulary(metadata: metadata, path: "m.gguf") }
        #expect(missing?.code == .missingMetadata && missing?.message.contains("tokenizer.ggml.tokens") == true)

        metadata = SyntheticBPE.metadata(more: ["tokenizer.ggml.model": .string("bert")])
        let model = #expect(throws: GGUFError.self) { try Vocabulary(metadata: metadata, path: "m.gguf") }
        #expect(model?.code == .invalidValue && model?.message.contains("bert") == true)

        metadata = SyntheticBPE.metadata(more: ["tokenizer.ggml.scores": .string("x")])
        let scores = #expect(throws: GGUFError.self) { try Vocabulary(metadata: metadata, path: "m.gguf") }
        #expect(scores?.message.contains("tokenizer.ggml.scores") == true)

        let pre = #expect(throws: TokenizerError.self) { try SyntheticBPE.tokenizer(pre: "deepseek-llm") }
        #expect(pre?.code == .unsupportedPreTokenizer && pre?.message.contains("deepseek-llm") == true)

        let duplicate = #expect(throws: TokenizerError.self) { try SyntheticBPE.tokenizer(extra: [("a", .normal)]) }
        #expect(duplicate?.code == .invalidVocabulary)

        var edited = try Vocabulary(metadata: SyntheticBPE.metadata(), path: "m.gguf")
        edited.tokens.append("extra")
        let mismatch = #expect(throws: TokenizerError.self) { try Tokenizers.make(edited) }
        #expect(mismatch?.code == .invalidVocabulary)
    }
}
