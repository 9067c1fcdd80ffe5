/// Splits text into the words BPE merges within, reproducing llama.cpp's
/// pre-tokenizer for each `tokenizer.ggml.pre` value.
///
/// llama.cpp runs a list of regexes in turn, each one re-splitting every piece
/// the previous one produced (text between matches stays a piece of its own).
/// Loom hand-writes each regex as a matcher over Unicode scalars; the names in
/// comments are the regexes they stand for.
struct PreTokenizer: Sendable {
    enum Stage: Sendable, Equatable {
        /// `\p{N}`: every number character alone (SmolLM, StarCoder).
        case eachNumber
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
        case gpt2
        /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|
        /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` — Llama 3 (3 digits), Qwen2 (1).
        case llama3(maxDigits: Int)
        /// `[\p{P}\$\+<=>\^~\|]+` (llama.cpp's default pipeline).
        case punctuationRuns
        /// `\p{N}+`
        case numberRuns
        /// `[0-9][0-9][0-9]`
        case asciiDigitTriples
    }

    var stages: [Stage]
    /// Llama 3 style vocabularies take a whole word as one token when the
    /// vocabulary has it, without running merges (llama.cpp's `ignore_merges`).
    var ignoreMerges: Bool

    /// Every `tokenizer.ggml.pre` value Loom accepts, grouped by the regexes
    /// llama.cpp gives it. An empty name is llama.cpp's fallback when the key is missing.
    static let byName: [String: PreTokenizer] = {
        var table: [String: PreTokenizer] = [:]
        func add(_ names: [String], _ stages: [Stage], ignoreMerges: Bool = false) {
            for name in names { table[name] = PreTokenizer(stages: stages, ignoreMerges: ignoreMerges) }
        }
        add(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"],
            [.llama3(maxDigits: 3)], ignoreMerges: true)
        add(["dbrx", "smaug-bpe", "glm4", "chatglm-bpe"], [.llama3(maxDigits: 3)])
        add(["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez", "hunyuan", "solar-open", "grok-2"],
            [.llama3(maxDigits: 1)])
        add(["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"],
            [.eachNumber, .gpt2])
        // llama.cpp spells it "gpt-2"; "gpt2" is accepted too as the obvious alias.
        add(["gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
             "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling"],
            [.gpt2])
        add(["default", ""], [.punctuationRuns, .gpt2, .numberRuns, .asciiDigitTriples])
        return table
    }()

    static var supportedNames: [String] { byName.keys.filter { !$0.isEmpty }.sorted() }

    /// Splits `text` and returns the words as scalar-index ranges.
    func split(_ text: ScalarText) -> [Range<Int>] {
        let count = text.scalars.count
        guard count > 0 else { return [] }
        let splitter = Splitter(scalars: text.scalars)
        var ends = [count]
        for stage in stages {
            var next: [Int] = []
            next.reserveCapacity(ends.count * 2)
            var start = 0
            for end in ends {
                splitter.run(stage, start, end, &next)
                start = end
            }
            ends = next
        }
        var words: [Range<Int>] = []
        words.reserveCapacity(ends.count)
        var start = 0
        for end in ends {
            words.append(start..<end)
            start = end
        }
        return words
    }
}

/// The matchers. Each works inside one piece `lo..<hi` (positions past `hi`
/// count as "no character", as llama.cpp's OUT_OF_RANGE does) and appends the
/// end of every non-empty word it finds, covering the piece completely.
private struct Splitter {
    let scalars: [UInt32]
    let classes: [ScalarClass]

    init(scalars: [UInt32]) {
        self.scalars = scalars
        classes = scalars.map(ScalarClasses.of)
    }

    private static let space: UInt32 = 0x20, apostrophe: UInt32 = 0x27, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A
    private static let wordish: ScalarClass = [.whitespace, .letter, .number]

    func run(_ stage: PreTokenizer.Stage, _ lo: Int, _ hi: Int, _ ends: inout [Int]) {
        switch stage {
        case .gpt2: gpt2(lo, hi, &ends)
        case .llama3(let maxDigits): llama3(lo, hi, maxDigits, &ends)
        case .eachNumber:
            splitMatches(lo, hi, &ends) { classes[$0].contains(.number) ? $0 + 1 : nil }
        case .numberRuns:
            splitMatches(lo, hi, &ends) { run(from: $0, hi) { classes[$0].contains(.number) } }
        case .punctuationRuns:
            splitMatches(lo, hi, &ends) { run(from: $0, hi, isDefaultPunctuation) }
        case .asciiDigitTriples:
            splitMatches(lo, hi, &ends) { pos in
                pos + 3 <= hi && (pos..<pos + 3).allSatisfy { (0x30...0x39).contains(scalars[$0]) } ? pos + 3 : nil
            }
        }
    }

    /// `\p{P}` plus the ASCII symbols llama.cpp's default pipeline adds to it.
    private func isDefaultPunctuation(_ pos: Int) -> Bool {
        if classes[pos].contains(.punctuation) { return true }
        switch scalars[pos] {
        case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: return true  // $ + < = > ^ ~ |
        default: return false
        }
    }

    /// The end of the longest run starting at `pos` whose characters pass `test`, or nil if empty.
    private func run(from pos: Int, _ hi: Int, _ test: (Int) -> Bool) -> Int? {
        var end = pos
        while end < hi && test(end) { end += 1 }
        return end > pos ? end : nil
    }

    /// How `std::regex_iterator` splits with a pattern that never matches empty:
    /// leftmost matches become words, and the text between them too.
    private func splitMatches(_ lo: Int, _ hi: Int, _ ends: inout [Int], _ match: (Int) -> Int?) {
        var pos = lo
        var gapStart = lo
        while pos < hi {
            if let end = match(pos) {
                if pos > gapStart { ends.append(pos) }
                ends.append(end)
                pos = end
                gapStart = end
            } else {
                pos += 1
            }
        }
        if hi > gapStart { ends.append(hi) }
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `pos`, or nil.
    private func contraction(_ pos: Int, _ hi: Int, ignoreCase: Bool) -> Int? {
        guard scalars[pos] == Self.apostrophe, pos + 1 < hi else { return nil }
        func letter(_ p: Int) -> UInt32 {
            let c = scalars[p]
            return ignoreCase && (0x41...0x5A).contains(c) ? c + 0x20 : c
        }
        switch letter(pos + 1) {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        default: break
        }
        guard pos + 2 < hi else { return nil }
        switch (letter(pos + 1), letter(pos + 2)) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return 3  // re ve ll
        default: return nil
        }
    }

    /// Whitespace at `pos`: `\s+(?!\S)` leaves the last space to prefix the
    /// next word; at the end of the piece the whole run is taken.
    private func whitespace(_ pos: Int, _ hi: Int) -> Int {
        var run = 0
        while pos + run < hi && classes[pos + run].contains(.whitespace) { run += 1 }
        if run > 1 && pos + run < hi { return pos + run - 1 }
        return pos + max(run, 1)
    }

    private func gpt2(_ lo: Int, _ hi: Int, _ ends: inout [Int]) {
        var pos = lo
        while pos < hi {
            if let length = contraction(pos, hi, ignoreCase: false) {
                pos += length
                ends.append(pos)
                continue
            }
            // ` ?X+` for X in letters, numbers, and "anything else but spaces".
            let probe = scalars[pos] == Self.space ? pos + 1 : pos
            if probe < hi {
                let first = classes[probe]
                let test: ((ScalarClass) -> Bool)?
                if first.contains(.letter) {
                    test = { $0.contains(.letter) }
                } else if first.contains(.number) {
                    test = { $0.contains(.number) }
                } else if first.isDisjoint(with: Self.wordish) {
                    test = { $0.isDisjoint(with: Self.wordish) }
                } else {
                    test = nil
                }
                if let test {
                    pos = probe
                    while pos < hi && test(classes[pos]) { pos += 1 }
                    ends.append(pos)
                    continue
                }
            }
            pos = whitespace(pos, hi)
            ends.append(pos)
        }
    }

    private func llama3(_ lo: Int, _ hi: Int, _ maxDigits: Int, _ ends: inout [Int]) {
        var pos = lo
        while pos < hi {
            let c = scalars[pos], cls = classes[pos]
            if let length = contraction(pos, hi, ignoreCase: true) {
                pos += length
            } else if c != Self.cr && c != Self.lf && !cls.contains(.number)
                && (cls.contains(.letter) || (pos + 1 < hi && classes[pos + 1].contains(.letter))) {
                // [^\r\n\p{L}\p{N}]?\p{L}+
                pos += 1
                while pos < hi && classes[pos].contains(.letter) { pos += 1 }
            } else if cls.contains(.number) {
                // \p{N}{1,maxDigits}: a long number becomes several words.
                var start = pos
                while pos < hi && classes[pos].contains(.number) {
                    pos += 1
                    if pos - start >= maxDigits {
                        ends.append(pos)
                        start = pos
                    }
                }
            } else if let end = llama3Symbols(pos, hi) {
                pos = end
            } else {
                pos = llama3Whitespace(pos, hi)
            }
            if ends.last != pos { ends.append(pos) }
        }
    }

    /// ` ?[^\s\p{L}\p{N}]+[\r\n]*`. A lone space at the end of a piece also
    /// lands here, as in llama.cpp; it yields the same one-space word.
    private func llama3Symbols(_ pos: Int, _ hi: Int) -> Int? {
        let probe = scalars[pos] == Self.space ? pos + 1 : pos
        guard probe >= hi || classes[probe].isDisjoint(with: Self.wordish) else { return nil }
        var end = probe
        while end < hi && classes[end].isDisjoint(with: Self.wordish) { end += 1 }
        while end < hi && (scalars[end] == Self.cr || scalars[end] == Self.lf) { end += 1 }
        return end
    }

    /// `\s*[\r\n]+|\s+(?!\S)|\s+`: a run holding line breaks ends after the last one.
    private func llama3Whitespace(_ pos: Int, _ hi: Int) -> Int {
        var run = 0
        var afterLastBreak = -1
        while pos + run < hi && classes[pos + run].contains(.whitespace) {
            if scalars[pos + run] == Self.cr || scalars[pos + run] == Self.lf { afterLastBreak = pos + run + 1 }
            run += 1
        }
        if afterLastBreak >= 0 { return afterLastBreak }
        return whitespace(pos, hi)
    }
}
