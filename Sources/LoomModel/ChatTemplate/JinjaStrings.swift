/// Python `str` behaviour that Swift's String does differently: Python
/// indexes, counts and strips by code point (not grapheme), and has its own
/// idea of whitespace, title case and splitting.

/// Python's `str.isspace` for one code point (it includes the ASCII
/// information separators 0x1C-0x1F, which Unicode's White_Space does not).
func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0: return true
    default: return scalar.value > 0x7F && scalar.properties.isWhitespace
    }
}

extension String {
    init<S: Sequence>(scalars: S) where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }

    var scalarCount: Int { unicodeScalars.count }

    /// `str.strip` / `lstrip` / `rstrip`: whitespace when `chars` is nil,
    /// otherwise any of the code points in `chars`.
    func pythonStrip(_ chars: String?, leading: Bool = true, trailing: Bool = true) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let strip: (Unicode.Scalar) -> Bool = { set?.contains($0) ?? isPythonSpace($0) }
        var scalars = unicodeScalars[...]
        if leading { while let first = scalars.first, strip(first) { scalars.removeFirst() } }
        if trailing { while let last = scalars.last, strip(last) { scalars.removeLast() } }
        return String(scalars: scalars)
    }

    /// Start offsets (in code points) of non-overlapping occurrences of
    /// `needle`, left to right, at most `limit` of them (all when negative).
    /// Code points, not Characters: Python does not apply canonical
    /// equivalence, so "e\u{301}" contains "e".
    func pythonOccurrences(of needle: String, limit: Int = -1) -> [Int] {
        let haystack = Array(unicodeScalars)
        let pattern = Array(needle.unicodeScalars)
        guard !pattern.isEmpty else { return [] }
        var found: [Int] = []
        var i = 0
        while i + pattern.count <= haystack.count, limit < 0 || found.count < limit {
            if haystack[i] == pattern[0] && haystack[i..<(i + pattern.count)].elementsEqual(pattern) {
                found.append(i)
                i += pattern.count
            } else {
                i += 1
            }
        }
        return found
    }

    func pythonContains(_ needle: String) -> Bool {
        needle.isEmpty || !pythonOccurrences(of: needle, limit: 1).isEmpty
    }

    func pythonFind(_ needle: String) -> Int {
        needle.isEmpty ? 0 : pythonOccurrences(of: needle, limit: 1).first ?? -1
    }

    func pythonHasPrefix(_ prefix: String) -> Bool { unicodeScalars.starts(with: prefix.unicodeScalars) }

    func pythonHasSuffix(_ suffix: String) -> Bool {
        unicodeScalars.reversed().starts(with: suffix.unicodeScalars.reversed())
    }

    func pythonEquals(_ other: String) -> Bool { unicodeScalars.elementsEqual(other.unicodeScalars) }

    /// Cuts at the given code-point offsets, dropping `width` code points at each.
    private func cut(at offsets: [Int], width: Int) -> [String] {
        let scalars = Array(unicodeScalars)
        var parts: [String] = []
        var start = 0
        for offset in offsets {
            parts.append(String(scalars: scalars[start..<offset]))
            start = offset + width
        }
        parts.append(String(scalars: scalars[start...]))
        return parts
    }

    /// `str.split(sep, maxsplit)`: runs of whitespace (dropping empties) when
    /// `separator` is nil, otherwise every occurrence of `separator`.
    func pythonSplit(_ separator: String?, maxSplit: Int = -1) -> [String] {
        guard let separator else { return whitespaceSplit(maxSplit: maxSplit) }
        return cut(at: pythonOccurrences(of: separator, limit: maxSplit), width: separator.scalarCount)
    }

    /// `str.rsplit`: like split, but a limit counts from the right.
    func pythonRSplit(_ separator: String?, maxSplit: Int = -1) -> [String] {
        if maxSplit < 0 { return pythonSplit(separator, maxSplit: maxSplit) }
        let reversedSelf = String(scalars: unicodeScalars.reversed())
        let reversedSeparator = separator.map { String(scalars: $0.unicodeScalars.reversed()) }
        return reversedSelf.pythonSplit(reversedSeparator, maxSplit: maxSplit)
            .map { String(scalars: $0.unicodeScalars.reversed()) }.reversed()
    }

    private func whitespaceSplit(maxSplit: Int) -> [String] {
        let scalars = Array(unicodeScalars)
        var parts: [String] = []
        var i = 0
        func skipSpace() { while i < scalars.count && isPythonSpace(scalars[i]) { i += 1 } }
        skipSpace()
        while i < scalars.count {
            if maxSplit >= 0 && parts.count == maxSplit {
                // Python keeps the remainder's trailing whitespace.
                parts.append(String(scalars: scalars[i...]))
                break
            }
            let start = i
            while i < scalars.count && !isPythonSpace(scalars[i]) { i += 1 }
            parts.append(String(scalars: scalars[start..<i]))
            skipSpace()
        }
        return parts
    }

    /// `str.replace(old, new, count)`; an empty `old` inserts `new` between
    /// every code point, as Python does.
    func pythonReplace(_ old: String, _ new: String, count: Int = -1) -> String {
        if old.isEmpty {
            var out = ""
            var inserted = 0
            for scalar in unicodeScalars {
                if count < 0 || inserted < count { out += new; inserted += 1 }
                out.unicodeScalars.append(scalar)
            }
            if count < 0 || inserted < count { out += new }
            return out
        }
        return cut(at: pythonOccurrences(of: old, limit: count), width: old.scalarCount).joined(separator: new)
    }

    /// Python `str.capitalize`: first character upper, the rest lower.
    var pythonCapitalized: String {
        guard let first = unicodeScalars.first else { return self }
        return String(first).uppercased() + String(scalars: unicodeScalars.dropFirst()).lowercased()
    }

    /// Python `str.title`: a cased character following an uncased one starts
    /// a word ("they're" becomes "They'Re").
    var pythonTitle: String {
        var out = ""
        var previousCased = false
        for scalar in unicodeScalars {
            let cased = scalar.properties.isCased
            let piece = String(scalar)
            out += cased ? (previousCased ? piece.lowercased() : piece.uppercased()) : piece
            previousCased = cased
        }
        return out
    }

    /// jinja2's `title` filter, which unlike `str.title` only starts words
    /// after whitespace, hyphens and opening brackets.
    var jinjaTitle: String {
        var out = ""
        var atWordStart = true
        for scalar in unicodeScalars {
            let piece = String(scalar)
            if isPythonSpace(scalar) || "-({[<".unicodeScalars.contains(scalar) {
                out += piece
                atWordStart = true
            } else {
                out += atWordStart ? piece.uppercased() : piece.lowercased()
                atWordStart = false
            }
        }
        return out
    }

    /// Python string comparison, by code point.
    func pythonLess(_ other: String) -> Bool {
        unicodeScalars.lexicographicallyPrecedes(other.unicodeScalars)
    }
}
