import Foundation
import LoomModel
import LoomTesting
import Testing

/// One case of a golden file written by scripts/golden/tokenizer_goldens.py
/// from llama.cpp (through llama-cpp-python).
struct TokenizerGoldenCase: Decodable, Sendable {
    var name: String
    var text: String
    var special: Bool
    var ids: [TokenID]
    /// llama_token_to_piece(id, special: true) for each id.
    var pieces_special: [[UInt8]]
    var roundtrip: Bool?
}

struct TokenizerGoldenFile: Decodable, Sendable {
    var pre: String?
    var add_bos: Bool
    var cases: [TokenizerGoldenCase]

    static func load(_ path: String) throws -> TokenizerGoldenFile {
        try JSONDecoder().decode(TokenizerGoldenFile.self, from: Fixtures.data(path))
    }
}

/// Tests/Fixtures/tokenizer/fuzz.json: texts, and llama.cpp's ids for them per pre-tokenizer.
struct TokenizerFuzzFile: Decodable, Sendable {
    var texts: [String]
    var ids: [String: [[TokenID]]]

    static func load() throws -> TokenizerFuzzFile {
        try JSONDecoder().decode(TokenizerFuzzFile.self, from: Fixtures.data("tokenizer/fuzz.json"))
    }
}

/// The real model's vocabulary, read once for all tests in this file.
enum RealVocabulary {
    static let loaded: Result<Vocabulary, any Error> = Result {
        let path = try TestModel.path()
        return try Vocabulary(metadata: GGUFFile(path: path).metadata, path: path)
    }

    static func get() throws -> Vocabulary { try loaded.get() }
}

@Suite("Tokenizer goldens on SmolLM2's vocabulary")
struct TokenizerGoldenTests {
    /// Each file tokenizes the same texts with llama.cpp, on SmolLM2's
    /// vocabulary with `tokenizer.ggml.pre` set as the file says.
    @Test(arguments: ["smollm2", "pre-llama-bpe", "pre-qwen2", "pre-gpt2"])
    func matchesLlamaCpp(fixture: String) throws {
        let golden = try TokenizerGoldenFile.load("tokenizer/\(fixture).json")
        var vocabulary = try RealVocabulary.get()
        vocabulary.preTokenizer = golden.pre ?? vocabulary.preTokenizer
        let tokenizer = try Tokenizers.make(vocabulary)
        var matched = 0
        for testCase in golden.cases {
            let ids = try tokenizer.encode(testCase.text, addSpecial: golden.add_bos, parseSpecial: testCase.special)
            #expect(ids == testCase.ids, "\(fixture) case '\(testCase.name)'")
            if ids == testCase.ids { matched += 1 }
            let pieces = testCase.ids.map(tokenizer.piece)
            #expect(pieces == testCase.pieces_special, "\(fixture) pieces of '\(testCase.name)'")
            if testCase.roundtrip == true {
                #expect(tokenizer.decode(testCase.ids) == testCase.text, "\(fixture) decode of '\(testCase.name)'")
            }
        }
        print("\(fixture): \(matched)/\(golden.cases.count) cases match llama.cpp")
        #expect(golden.cases.count >= 45)
    }

    /// Random texts full of awkward characters (scripts/golden/tokenizer_fuzz_goldens.py).
    @Test(arguments: ["smollm", "llama-bpe", "qwen2", "gpt-2", "default", "stablelm2"])
    func matchesLlamaCppOnRandomTexts(preTokenizer: String) throws {
        let fuzz = try TokenizerFuzzFile.load()
        let expected = try #require(fuzz.ids[preTokenizer])
        var vocabulary = try RealVocabulary.get()
        vocabulary.preTokenizer = preTokenizer
        let tokenizer = try Tokenizers.make(vocabulary)
        var matched = 0
        for (index, (text, ids)) in zip(fuzz.texts, expected).enumerated() {
            let got = try tokenizer.encode(text, addSpecial: false, parseSpecial: index % 3 == 0)
            #expect(got == ids, "\(preTokenizer) text #\(index) \(text.debugDescription)")
            if got == ids { matched += 1 }
        }
        print("fuzz \(preTokenizer): \(matched)/\(fuzz.texts.count) texts match llama.cpp")
    }

    @Test func specialTokenIDsMatchLlamaCpp() throws {
        let vocabulary = try RealVocabulary.get()
        #expect(vocabulary.model == .bpe)
        #expect(vocabulary.preTokenizer == "smollm")
        #expect(vocabulary.tokens.count == 49152)
        #expect(vocabulary.bosID == 1)
        #expect(vocabulary.eosID == 2)
        #expect(vocabulary.unknownID == 0)
        #expect(vocabulary.eotID == 2)  // <|im_end|>
        #expect(vocabulary.addBOS == false)
        #expect(vocabulary.addEOS == false)
        // <|endoftext|>, <|im_end|>, and <reponame> (llama.cpp's FIM repository marker).
        #expect(vocabulary.endOfGenerationIDs == [0, 2, 4])
    }

    @Test func streamingReassemblesEveryGoldenText() throws {
        let tokenizer = try Tokenizers.make(RealVocabulary.get())
        let golden = try TokenizerGoldenFile.load("tokenizer/smollm2.json")
        for testCase in golden.cases where testCase.roundtrip == true {
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var text = ""
            for id in testCase.ids {
                let chunk = stream.append(id)
                #expect(!chunk.unicodeScalars.contains("\u{FFFD}"), "broken UTF-8 streamed in '\(testCase.name)'")
                text += chunk
            }
            text += stream.finish()
            #expect(text == testCase.text, "streamed '\(testCase.name)'")
        }
    }

    /// About 2 KB of mixed prose, code and numbers, timed over repeated runs.
    @Test func encodesTwoKilobytesQuickly() throws {
        let vocabulary = try RealVocabulary.get()
        let clock = ContinuousClock()
        var made: (any Tokenizer)?
        let building = try clock.measure { made = try Tokenizers.make(vocabulary) }
        let tokenizer = try #require(made)
        print("building the tokenizer for \(vocabulary.tokens.count) tokens: \(building)")
        let golden = try TokenizerGoldenFile.load("tokenizer/smollm2.json")
        var text = ""
        for testCase in golden.cases where !testCase.special {
            text += testCase.text + "\n"
            if text.utf8.count >= 2048 { break }
        }
        let runs = 20
        var tokens = 0
        let elapsed = try clock.measure {
            for _ in 0..<runs { tokens = try tokenizer.encode(text, addSpecial: false, parseSpecial: true).count }
        }
        let perRun = elapsed / runs
        print("encode \(text.utf8.count) bytes -> \(tokens) tokens: \(perRun) per call")
        // Generous bounds (shared 2-core machines): they catch a quadratic
        // slip, not a few percent. Release encodes this in well under 2 ms.
        #if DEBUG
        #expect(perRun < .milliseconds(500))
        #else
        #expect(perRun < .milliseconds(20))
        #endif
    }
}
