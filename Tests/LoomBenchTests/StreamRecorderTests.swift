import Testing
@testable import LoomBench

@Suite struct StreamEventTests {
    @Test func decodesContentUsageAndDone() {
        #expect(StreamEvent.decode(SSEEvent(data: #"{"choices":[{"delta":{"content":"hi"}}]}"#)) == [.content("hi")])
        #expect(StreamEvent.decode(SSEEvent(data: #"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#)) == [.other])
        #expect(StreamEvent.decode(SSEEvent(data: #"{"choices":[],"usage":{"completion_tokens":64}}"#))
            == [.usage(promptTokens: nil, completionTokens: 64)])
        #expect(StreamEvent.decode(SSEEvent(data: #"{"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":5}}"#))
            == [.usage(promptTokens: 31, completionTokens: 5)])
        #expect(StreamEvent.decode(SSEEvent(data: "[DONE]")) == [.done])
    }

    @Test func nullUsageAndFinishReasonAreNotContent() {
        let chunk = #"{"choices":[{"delta":{},"finish_reason":"length"}],"usage":null}"#
        #expect(StreamEvent.decode(SSEEvent(data: chunk)) == [.other])
    }

    @Test func errorChunksAndGarbageBecomeErrors() {
        #expect(StreamEvent.decode(SSEEvent(data: #"{"error":{"message":"out of memory"}}"#)) == [.error("out of memory")])
        guard case .error = StreamEvent.decode(SSEEvent(data: "{not json"))[0] else {
            Issue.record("garbage must be an error")
            return
        }
    }
}

@Suite struct StreamRecorderTests {
    @Test func timesFirstTokenGapsAndEnd() throws {
        var recorder = StreamRecorder()
        recorder.record(.other, at: 0.1)
        recorder.record(.content("a"), at: 0.5)
        recorder.record(.content("b"), at: 0.6)
        recorder.record(.content("c"), at: 0.9)
        recorder.record(.done, at: 0.9)
        let metrics = try #require(recorder.finish(at: 1.0).metrics)
        #expect(metrics.timeToFirstToken == 0.5)
        #expect(metrics.interTokenLatencies.count == 2)
        #expect(abs(metrics.interTokenLatencies[0] - 0.1) < 1e-12)
        #expect(abs(metrics.interTokenLatencies[1] - 0.3) < 1e-12)
        #expect(metrics.endToEnd == 1.0)
        #expect(metrics.outputTokens == 3)
    }

    @Test func usageOverridesTheChunkCount() throws {
        var recorder = StreamRecorder()
        recorder.record(.content("two tokens"), at: 0.2)
        recorder.record(.usage(promptTokens: 40, completionTokens: 2), at: 0.3)
        recorder.record(.done, at: 0.3)
        let metrics = try #require(recorder.finish(at: 0.3).metrics)
        #expect(metrics.outputTokens == 2)
        #expect(metrics.promptTokens == 40)
    }

    @Test func failuresSayWhy() {
        var truncated = StreamRecorder()
        truncated.record(.content("a"), at: 0.1)
        #expect(truncated.finish(at: 0.2) == .failed("stream ended without data: [DONE]"))

        var empty = StreamRecorder()
        empty.record(.done, at: 0.1)
        #expect(empty.finish(at: 0.1) == .failed("stream carried no content"))

        var broken = StreamRecorder()
        broken.record(.content("a"), at: 0.1)
        broken.record(.error("engine stopped"), at: 0.2)
        broken.record(.done, at: 0.2)
        #expect(broken.finish(at: 0.2) == .failed("engine stopped"))
    }
}
