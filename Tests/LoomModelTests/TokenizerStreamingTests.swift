import LoomModel
import Testing

/// With no merges, the synthetic byte-level vocabulary encodes every byte as
/// its own token, so multi-byte characters arrive split across tokens.
@Suite("Streaming detokenizer")
struct TokenizerStreamingTests {
    static func stream(_ ids: [TokenID]) throws -> (chunks: [String], final: String) {
        var detokenizer = StreamingDetokenizer(tokenizer: try SyntheticBPE.tokenizer(extra: [("<|im_end|>", .control)]))
        let chunks = ids.map { detokenizer.append($0) }
        return (chunks, detokenizer.finish())
    }

    @Test func holdsBackAnEmojiUntilItsLastByte() throws {
        let (chunks, final) = try Self.stream(Array("a😀b".utf8).map(TokenID.init))
        #expect(chunks == ["a", "", "", "", "😀", "b"])
        #expect(final == "")
    }

    @Test(arguments: ["héllo wörld", "东京", "👨‍👩‍👧 family", "ok"])
    func neverEmitsBrokenText(text: String) throws {
        let (chunks, final) = try Self.stream(Array(text.utf8).map(TokenID.init))
        #expect(chunks.allSatisfy { !$0.unicodeScalars.contains("\u{FFFD}") })
        #expect(chunks.joined() + final == text)
    }

    @Test func controlTokensStreamAsTheirText() throws {
        let (chunks, _) = try Self.stream([104, 105, 256])
        #expect(chunks == ["h", "i", "<|im_end|>"])
    }

    @Test func unfinishedSequenceBecomesReplacementAtFinish() throws {
        // The first three bytes of 😀 (F0 9F 98 80), then the stream ends.
        let (chunks, final) = try Self.stream([0xF0, 0x9F, 0x98])
        #expect(chunks == ["", "", ""])
        #expect(final == "\u{FFFD}")
    }

    @Test func bytesThatCanNeverBeValidAreNotHeldBack() throws {
        // 0xFF never appears in UTF-8; E0 80 is an overlong start.
        let (chunks, final) = try Self.stream([0xFF, 0x61, 0xE0, 0x80, 0x62])
        #expect(chunks == ["\u{FFFD}", "a", "", "\u{FFFD}\u{FFFD}", "b"])
        #expect(final == "")
    }

    @Test func continuesAfterAPartialSequenceIsInterrupted() throws {
        // C3 starts a two-byte character but "x" follows instead.
        let (chunks, final) = try Self.stream([0xC3, 0x78, 0xC3, 0xA9])
        #expect(chunks == ["", "\u{FFFD}x", "", "é"])
        #expect(final == "")
    }
}
