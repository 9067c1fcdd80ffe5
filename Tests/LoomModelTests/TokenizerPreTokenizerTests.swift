@testable import LoomModel
import Testing

/// The pre-tokenizer's word splits, checked against the regexes llama.cpp
/// stands for, as Python's `regex` module (which the Hugging Face tokenizers
/// follow) applies them: each pipeline runs its patterns in turn, every match
/// and every gap between matches becoming a word. Expected values were
/// produced with that module, not with Loom.
@Suite("Tokenizer pre-tokenizer splits")
struct TokenizerPreTokenizerTests {
    static func words(_ text: String, _ name: String) throws -> [String] {
        let preTokenizer = try #require(PreTokenizer.byName[name])
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            let scalars = ScalarText(buffer)
            return preTokenizer.split(scalars).map { word in
                String(decoding: bytes[scalars.offsets[word.lowerBound]..<scalars.offsets[word.upperBound]], as: UTF8.self)
            }
        }
    }

    @Test(arguments: ["gpt2", "llama3", "qwen2", "smollm", "default"])
    func matchesReferenceRegexes(pipeline: String) throws {
        let expected = try #require(Self.expected[pipeline])
        for (text, words) in zip(Self.texts, expected) {
            #expect(try Self.words(text, pipeline) == words, "\(pipeline): \(text.debugDescription)")
        }
    }

    @Test func namesShareTheirFamilysRegexes() throws {
        for (alias, family) in [("llama-bpe", "llama3"), ("gpt-2", "gpt2"), ("starcoder", "smollm"), ("deepseek-r1-qwen", "qwen2"), ("", "default")] {
            #expect(PreTokenizer.byName[alias]?.stages == PreTokenizer.byName[family]?.stages, "\(alias)")
        }
        #expect(PreTokenizer.byName["llama-bpe"]?.ignoreMerges == true)
        #expect(PreTokenizer.byName["smollm"]?.ignoreMerges == false)
        #expect(PreTokenizer.byName["deepseek-llm"] == nil)
    }

    static let texts: [String] = ["Hello world", "I'M here, you'LL see 'tis", "a  b   c\u{9}\u{9}d \u{a}\u{a} e  ", "x=12345+6.7e-8;", "  leading and trailing  ", "line1\u{d}\u{a}\u{d}\u{a}line2\u{a}", "naïve café ½ ² ٣٤ 東京タワー", "emoji 😀👍🏽!!", "$100 <=> ^~| `tick`", "\u{a0}nbsp\u{2003}em\u{3000}ideo", "'s's 's", "don't DON'T Don'T", "   \u{a}   x", "tab\u{9}new\u{a}line  \u{a}"]
    static let expected: [String: [[String]]] = [
        "gpt2": [
            ["Hello", " world"],
            ["I", "'", "M", " here", ",", " you", "'", "LL", " see", " '", "tis"],
            ["a", " ", " b", "  ", " c", "\u{9}", "\u{9}", "d", " \u{a}\u{a}", " e", "  "],
            ["x", "=", "12345", "+", "6", ".", "7", "e", "-", "8", ";"],
            [" ", " leading", " and", " trailing", "  "],
            ["line", "1", "\u{d}\u{a}\u{d}", "\u{a}", "line", "2", "\u{a}"],
            ["naïve", " café", " ½", " ²", " ٣٤", " 東京タワー"],
            ["emoji", " 😀👍🏽!!"],
            ["$", "100", " <=>", " ^~|", " `", "tick", "`"],
            ["\u{a0}", "nbsp", "\u{2003}", "em", "\u{3000}", "ideo"],
            ["'s", "'s", " '", "s"],
            ["don", "'t", " DON", "'", "T", " Don", "'", "T"],
            ["   \u{a}  ", " x"],
            ["tab", "\u{9}", "new", "\u{a}", "line", "  \u{a}"],
        ],
        "llama3": [
            ["Hello", " world"],
            ["I", "'M", " here", ",", " you", "'LL", " see", " '", "tis"],
            ["a", " ", " b", "  ", " c", "\u{9}", "\u{9}d", " \u{a}\u{a}", " e", "  "],
            ["x", "=", "123", "45", "+", "6", ".", "7", "e", "-", "8", ";"],
            [" ", " leading", " and", " trailing", "  "],
            ["line", "1", "\u{d}\u{a}\u{d}\u{a}", "line", "2", "\u{a}"],
            ["naïve", " café", " ", "½", " ", "²", " ", "٣٤", " 東京タワー"],
            ["emoji", " 😀👍🏽!!"],
            ["$", "100", " <=>", " ^~|", " `", "tick", "`"],
            ["\u{a0}nbsp", "\u{2003}em", "\u{3000}ideo"],
            ["'s", "'s", " '", "s"],
            ["don", "'t", " DON", "'T", " Don", "'T"],
            ["   \u{a}", "  ", " x"],
            ["tab", "\u{9}new", "\u{a}", "line", "  \u{a}"],
        ],
        "qwen2": [
            ["Hello", " world"],
            ["I", "'M", " here", ",", " you", "'LL", " see", " '", "tis"],
            ["a", " ", " b", "  ", " c", "\u{9}", "\u{9}d", " \u{a}\u{a}", " e", "  "],
            ["x", "=", "1", "2", "3", "4", "5", "+", "6", ".", "7", "e", "-", "8", ";"],
            [" ", " leading", " and", " trailing", "  "],
            ["line", "1", "\u{d}\u{a}\u{d}\u{a}", "line", "2", "\u{a}"],
            ["naïve", " café", " ", "½", " ", "²", " ", "٣", "٤", " 東京タワー"],
            ["emoji", " 😀👍🏽!!"],
            ["$", "1", "0", "0", " <=>", " ^~|", " `", "tick", "`"],
            ["\u{a0}nbsp", "\u{2003}em", "\u{3000}ideo"],
            ["'s", "'s", " '", "s"],
            ["don", "'t", " DON", "'T", " Don", "'T"],
            ["   \u{a}", "  ", " x"],
            ["tab", "\u{9}new", "\u{a}", "line", "  \u{a}"],
        ],
        "smollm": [
            ["Hello", " world"],
            ["I", "'", "M", " here", ",", " you", "'", "LL", " see", " '", "tis"],
            ["a", " ", " b", "  ", " c", "\u{9}", "\u{9}", "d", " \u{a}\u{a}", " e", "  "],
            ["x", "=", "1", "2", "3", "4", "5", "+", "6", ".", "7", "e", "-", "8", ";"],
            [" ", " leading", " and", " trailing", "  "],
            ["line", "1", "\u{d}\u{a}\u{d}", "\u{a}", "line", "2", "\u{a}"],
            ["naïve", " café", " ", "½", " ", "²", " ", "٣", "٤", " 東京タワー"],
            ["emoji", " 😀👍🏽!!"],
            ["$", "1", "0", "0", " <=>", " ^~|", " `", "tick", "`"],
            ["\u{a0}", "nbsp", "\u{2003}", "em", "\u{3000}", "ideo"],
            ["'s", "'s", " '", "s"],
            ["don", "'t", " DON", "'", "T", " Don", "'", "T"],
            ["   \u{a}  ", " x"],
            ["tab", "\u{9}", "new", "\u{a}", "line", "  \u{a}"],
        ],
        "default": [
            ["Hello", " world"],
            ["I", "'", "M", " here", ",", " you", "'", "LL", " see", " ", "'", "tis"],
            ["a", " ", " b", "  ", " c", "\u{9}", "\u{9}", "d", " \u{a}\u{a}", " e", "  "],
            ["x", "=", "123", "45", "+", "6", ".", "7", "e", "-", "8", ";"],
            [" ", " leading", " and", " trailing", "  "],
            ["line", "1", "\u{d}\u{a}\u{d}", "\u{a}", "line", "2", "\u{a}"],
            ["naïve", " café", " ", "½", " ", "²", " ", "٣٤", " 東京タワー"],
            ["emoji", " 😀👍🏽", "!!"],
            ["$", "100", " ", "<=>", " ", "^~|", " `", "tick", "`"],
            ["\u{a0}", "nbsp", "\u{2003}", "em", "\u{3000}", "ideo"],
            ["'", "s", "'", "s", " ", "'", "s"],
            ["don", "'", "t", " DON", "'", "T", " Don", "'", "T"],
            ["   \u{a}  ", " x"],
            ["tab", "\u{9}", "new", "\u{a}", "line", "  \u{a}"],
        ],
    ]
}
