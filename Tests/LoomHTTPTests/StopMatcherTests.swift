@testable import LoomHTTP
import Testing

@Suite struct StopMatcherTests {
    /// Feeds pieces one at a time, as tokens arrive; returns the emitted text
    /// and whether a stop matched.
    private func run(_ stops: [String], _ pieces: [String]) -> (String, Bool) {
        var matcher = StopMatcher(stops)
        var out = ""
        for piece in pieces {
            let (emit, stopped) = matcher.push(piece)
            out += emit
            if stopped { return (out, true) }
        }
        return (out + matcher.flush(), false)
    }

    @Test func aStopSplitAcrossPiecesIsFoundAndNotEmitted() {
        #expect(run(["END"], ["abc E", "N", "D tail"]) == ("abc ", true))
        #expect(run(["\n\n"], ["a\n", "\nb"]) == ("a", true))
    }

    @Test func textThatMightStartAStopIsHeldBackUntilItCannot() {
        var matcher = StopMatcher(["STOP"])
        #expect(matcher.push("go ST") == ("go ", false))
        #expect(matcher.isHoldingText)
        #expect(matcher.push("ay") == ("STay", false))
        #expect(!matcher.isHoldingText)
    }

    @Test func theEarliestOfSeveralStopsWins() {
        #expect(run(["world", "lo w"], ["hello world"]) == ("hel", true))
    }

    @Test func heldTextIsReleasedAtTheEnd() {
        #expect(run(["xyz"], ["abc x", "y"]) == ("abc xy", false))
        #expect(run([], ["plain"]) == ("plain", false))
        #expect(run([""], ["empty stops are ignored"]) == ("empty stops are ignored", false))
    }

    @Test func multiScalarTextIsMatchedByScalars() {
        #expect(run(["é!"], ["caf", "é", "!"]) == ("caf", true))
    }
}
