import Testing
@testable import LoomBench

@Suite struct SSEParserTests {
    private let stream = """
        data: {"choices":[{"delta":{"role":"assistant"}}]}

        data: {"choices":[{"delta":{"content":"Hé"}}]}

        : keep-alive

        data: {"choices":[{"delta":{"content":"llo"}}],"usage":null}

        data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}

        data: [DONE]


        """

    @Test func wholeStreamGivesEveryEventInOrder() {
        var parser = SSEParser()
        let events = parser.feed(Array(stream.utf8))
        #expect(events.count == 5)
        #expect(events.last?.isDone == true)
        #expect(parser.finish() == nil)
    }

    /// Network reads split anywhere, including inside the two bytes of "é";
    /// every split point must give the same events.
    @Test func everySplitPointGivesTheSameEvents() {
        let bytes = Array(stream.utf8)
        var whole = SSEParser()
        let expected = whole.feed(bytes)
        for cut in 1..<bytes.count {
            var parser = SSEParser()
            let events = parser.feed(bytes[..<cut]) + parser.feed(bytes[cut...])
            #expect(events == expected, "split at byte \(cut)")
        }
    }

    @Test func byteAtATime() {
        var parser = SSEParser()
        var events: [SSEEvent] = []
        for byte in stream.utf8 { events += parser.feed([byte]) }
        #expect(events.map(\.data) == SSEParserTests.dataOf(stream))
    }

    @Test func crlfLineEndingsAndMultiLineData() {
        var parser = SSEParser()
        let events = parser.feed(Array("data: a\r\ndata:b\r\n\r\ndata: [DONE]\r\n\r\n".utf8))
        #expect(events == [SSEEvent(data: "a\nb"), SSEEvent(data: "[DONE]")])
    }

    @Test func streamClosedWithoutFinalBlankLine() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: [DONE]".utf8)).isEmpty)
        #expect(parser.finish()?.isDone == true)
    }

    @Test func otherFieldsAreIgnored() {
        var parser = SSEParser()
        let events = parser.feed(Array("event: message\nid: 7\nretry: 10\ndata: x\n\n".utf8))
        #expect(events == [SSEEvent(data: "x")])
    }

    private static func dataOf(_ text: String) -> [String] {
        text.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }
}
