/// Finds stop strings in text that arrives in pieces. Text that could still
/// be the start of a stop string is held back, so a stop string split
/// across tokens is never emitted, not even in part.
struct StopMatcher: Sendable {
    private let stops: [[Unicode.Scalar]]
    private var held: [Unicode.Scalar] = []

    init(_ stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
    }

    /// Adds text; returns what is safe to emit and whether a stop string
    /// matched (then the text after the match is dropped).
    mutating func push(_ text: String) -> (emit: String, stopped: Bool) {
        held.append(contentsOf: text.unicodeScalars)
        if let match = earliestMatch() {
            let emit = String(String.UnicodeScalarView(held[..<match]))
            held.removeAll()
            return (emit, true)
        }
        let keep = longestPartialMatch()
        let emit = String(String.UnicodeScalarView(held[..<(held.count - keep)]))
        held.removeFirst(held.count - keep)
        return (emit, false)
    }

    /// At the end of generation nothing more can complete a stop string.
    mutating func flush() -> String {
        defer { held.removeAll() }
        return String(String.UnicodeScalarView(held))
    }

    var isHoldingText: Bool { !held.isEmpty }

    private func earliestMatch() -> Int? {
        var best: Int?
        for stop in stops where stop.count <= held.count {
            for start in 0...(held.count - stop.count) where best.map({ start < $0 }) ?? true {
                if held[start..<(start + stop.count)].elementsEqual(stop) {
                    best = start
                    break
                }
            }
        }
        return best
    }

    /// The longest suffix of the held text that is a proper prefix of a stop string.
    private func longestPartialMatch() -> Int {
        var longest = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, held.count), to: longest, by: -1)
            where held[(held.count - length)...].elementsEqual(stop[..<length]) {
                longest = length
                break
            }
        }
        return longest
    }
}
