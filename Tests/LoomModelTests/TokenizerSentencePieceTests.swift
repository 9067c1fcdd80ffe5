import Foundation
import LoomModel
import LoomTesting
import Testing

/// spm-tiny.gguf is an 800-token SentencePiece vocabulary (no weights) with
/// byte-fallback tokens; spm-tiny.json holds llama.cpp's ids for it.
@Suite("SentencePiece tokenizer")
struct TokenizerSentencePieceTests {
    struct GoldenCase: Decodable {
        var name: String
        var text: String
        var special: Bool
        var ids: [TokenID]
        var pieces_special: [[UInt8]]
    }

    struct GoldenFile: Decodable {
        var add_bos: Bool
        var bos_id: TokenID
        var eos_id: TokenID
        var unk_id: TokenID
        var cases: [GoldenCase]
    }

    static func load() throws -> (any Tokenizer, GoldenFile) {
        let path = Fixtures.url("spm/spm-tiny.gguf").path
        let vocabulary = try Vocabulary(metadata: GGUFFile(path: path).metadata, path: path)
        let golden = try JSONDecoder().decode(GoldenFile.self, from: Fixtures.data("spm/spm-tiny.json"))
        return (try Tokenizers.make(vocabulary), golden)
    }

    @Test func matchesLlamaCppGoldens() throws {
        let (tokenizer, golden) = try Self.load()
        var matched = 0
        for testCase in golden.cases {
            let ids = try tokenizer.encode(testCase.text, addSpecial: golden.add_bos, parseSpecial: testCase.special)
            #expect(ids == testCase.ids, "case '\(testCase.name)'")
            if ids == testCase.ids { matched += 1 }
            #expect(testCase.ids.map(tokenizer.piece) == testCase.pieces_special, "pieces of '\(testCase.name)'")
        }
        print("spm-tiny: \(matched)/\(golden.cases.count) cases match llama.cpp")
        #expect(golden.cases.count >= 30)
    }

    /// The random texts of tokenizer/fuzz.json (scripts/golden/tokenizer_fuzz_goldens.py).
    @Test func matchesLlamaCppOnRandomTexts() throws {
        struct Fuzz: Decodable {
            var texts: [String]
            var ids: [String: [[TokenID]]]
        }
        let fuzz = try JSONDecoder().decode(Fuzz.self, from: Fixtures.data("tokenizer/fuzz.json"))
        let expected = try #require(fuzz.ids["spm-tiny"])
        let (tokenizer, _) = try Self.load()
        var matched = 0
        for (index, (text, ids)) in zip(fuzz.texts, expected).enumerated() {
            let got = try tokenizer.encode(text, addSpecial: true, parseSpecial: index % 3 == 0)
            #expect(got == ids, "text #\(index) \(text.debugDescription)")
            if got == ids { matched += 1 }
        }
        print("fuzz spm-tiny: \(matched)/\(fuzz.texts.count) texts match llama.cpp")
        #expect(fuzz.texts.count >= 200)
    }

    @Test func vocabularyFollowsTheFile() throws {
        let (tokenizer, golden) = try Self.load()
        let vocabulary = tokenizer.vocabulary
        #expect(vocabulary.model == .sentencePiece)
        #expect(vocabulary.preTokenizer == "default")  // stored, though SentencePiece ignores it
        #expect(vocabulary.bosID == golden.bos_id)
        #expect(vocabulary.eosID == golden.eos_id)
        #expect(vocabulary.unknownID == golden.unk_id)
        #expect(vocabulary.addBOS && !vocabulary.addEOS && vocabulary.addSpacePrefix)
        #expect(vocabulary.endOfGenerationIDs == [golden.eos_id])  // </s>
    }

    @Test func decodeTurnsMetaSpacesAndBytesBackIntoText() throws {
        let (tokenizer, _) = try Self.load()
        let text = "Lina says: Привет! 😀 café 123"
        let ids = try tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        // The space prefix SentencePiece adds comes back as a leading space.
        #expect(tokenizer.decode(ids) == " " + text)
    }

    /// Without byte-fallback tokens an unknown character cannot be spelled;
    /// llama.cpp aborts there, Loom reports it.
    @Test func missingByteFallbackIsAnError() throws {
        let metadata: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("llama"),
            "tokenizer.ggml.tokens": .array(["<unk>", "<s>", "</s>", "▁", "a"].map(GGUFValue.string)),
            "tokenizer.ggml.token_type": .array([2, 3, 3, 1, 1].map(GGUFValue.int32)),
        ]
        let tokenizer = try Tokenizers.make(Vocabulary(metadata: metadata, path: "synthetic"))
        #expect(try tokenizer.encode("a", addSpecial: true, parseSpecial: false) == [1, 3, 4])
        #expect(throws: TokenizerError.self) { try tokenizer.encode("ß", addSpecial: false, parseSpecial: false) }
    }
}
