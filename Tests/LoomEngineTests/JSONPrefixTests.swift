@testable import LoomEngine
import Testing

@Suite struct JSONPrefixTests {
    private func accepts(_ text: String) -> (Bool, Bool) {
        var state = JSONPrefix()
        for byte in text.utf8 where !state.feed(byte) { return (false, false) }
        return (true, state.isComplete)
    }

    @Test func validObjectsAreAcceptedAndComplete() {
        for text in [#"{}"#, #"{"a": 1}"#, #"{"a": [1, -2.5e+3, true, null, {"b": "x\"\u00e9"}], "c": false}"#, "{\n  \"k\": 0.5\n}"] {
            #expect(accepts(text) == (true, true), "\(text)")
        }
    }

    @Test func prefixesAreAcceptedButIncomplete() {
        for text in [#"{"#, #"{"a""#, #"{"a": [1, 2"#, #"{"a": tr"#, #"{"a": -"#] {
            #expect(accepts(text) == (true, false), "\(text)")
        }
    }

    @Test func invalidJSONIsRefusedAtTheFirstBadByte() {
        for text in [#"["#, #"{a"#, #"{"a" 1}"#, #"{"a": 01}"#, #"{"a": tru }"#, #"{"a": 1,}"#, #"{"a": 1]"#, "{\"a\": \"\n\"}", #"{} x"#, #"{"a": "\q"}"#] {
            #expect(accepts(text).0 == false, "\(text)")
        }
    }

    @Test func endlessWhitespaceIsCut() {
        #expect(accepts("{" + String(repeating: " ", count: JSONPrefix.maxWhitespaceRun)).0)
        #expect(!accepts("{" + String(repeating: " ", count: JSONPrefix.maxWhitespaceRun + 1)).0)
    }
}
