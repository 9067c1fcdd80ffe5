struct JinjaToken: Sendable {
    enum Kind: Sendable, Equatable {
        /// Template text between tags, with whitespace control already applied.
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        /// Operators and punctuation: `+`, `//`, `==`, `(`, `|`, `.`, ...
        case op(String)
        case eof
    }

    var kind: Kind
    var location: TemplateLocation
}

/// Splits a template into text and tag tokens the way jinja2's lexer does
/// with transformers' settings (trim_blocks, lstrip_blocks, and the default
/// keep_trailing_newline=False), so whitespace in the output matches exactly.
/// Works on code points so columns and string literals follow Python.
struct JinjaLexer {
    let source: [Unicode.Scalar]
    var pos = 0
    private var tokens: [JinjaToken] = []
    /// Whether the last thing consumed ended a line; lstrip_blocks strips a
    /// tag's indentation only when the tag starts a line.
    private var lineStarting = true
    private var lineStarts: [Int] = [0]

    static func tokenize(_ text: String) throws -> [JinjaToken] {
        var lexer = JinjaLexer(source: normalizeNewlines(text))
        try lexer.run()
        return lexer.tokens
    }

    private init(source: [Unicode.Scalar]) {
        self.source = source
        for (index, scalar) in source.enumerated() where scalar == "\n" {
            lineStarts.append(index + 1)
        }
    }

    /// jinja2 turns every newline style into "\n" and drops one trailing
    /// newline before lexing.
    private static func normalizeNewlines(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        var previousCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                out.append("\n")
            } else if !(scalar == "\n" && previousCR) {
                out.append(scalar)
            }
            previousCR = scalar == "\r"
        }
        if out.last == "\n" { out.removeLast() }
        return out
    }

    func location(_ offset: Int) -> TemplateLocation {
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return TemplateLocation(line: low + 1, column: offset - lineStarts[low] + 1)
    }

    func syntaxError(_ message: String, at offset: Int) -> ChatTemplateError {
        ChatTemplateError(.syntax, message, at: location(offset))
    }

    func matches(_ literal: String, at offset: Int) -> Bool {
        var i = offset
        for scalar in literal.unicodeScalars {
            guard i < source.count, source[i] == scalar else { return false }
            i += 1
        }
        return true
    }

    mutating func emit(_ kind: JinjaToken.Kind, at offset: Int) {
        tokens.append(JinjaToken(kind: kind, location: location(offset)))
    }

    // MARK: - Text and tag boundaries

    private enum TagKind { case variable, block, comment }

    private mutating func run() throws {
        while pos < source.count {
            guard let (start, kind) = nextTagStart() else {
                emit(.text(String(scalars: source[pos...])), at: pos)
                break
            }
            var sign: Unicode.Scalar? = nil
            if start + 2 < source.count, source[start + 2] == "-" || source[start + 2] == "+" {
                sign = source[start + 2]
            }
            let text = controlledText(pos..<start, sign: sign, isVariable: kind == .variable)
            if !text.isEmpty { emit(.text(text), at: pos) }
            pos = start + 2 + (sign == nil ? 0 : 1)
            switch kind {
            case .comment: try skipComment(from: start)
            case .variable: try lexTag(variable: true, start: start)
            case .block:
                if try !lexRaw(start: start) { try lexTag(variable: false, start: start) }
            }
        }
        emit(.eof, at: source.count)
    }

    private func nextTagStart() -> (Int, TagKind)? {
        var i = pos
        while i + 1 < source.count {
            if source[i] == "{" {
                switch source[i + 1] {
                case "{": return (i, .variable)
                case "%": return (i, .block)
                case "#": return (i, .comment)
                default: break
                }
            }
            i += 1
        }
        return nil
    }

    /// The text before a tag after `{%-` / `{{-` (strip all whitespace) or
    /// lstrip_blocks (strip the indentation of a block or comment tag that
    /// starts its line; `{%+` opts out).
    private func controlledText(_ range: Range<Int>, sign: Unicode.Scalar?, isVariable: Bool) -> String {
        var end = range.upperBound
        if sign == "-" {
            while end > range.lowerBound && isPythonSpace(source[end - 1]) { end -= 1 }
        } else if sign != "+" && !isVariable {
            var lineStart = end
            while lineStart > range.lowerBound && source[lineStart - 1] != "\n" { lineStart -= 1 }
            let afterNewline = lineStart > range.lowerBound
            if afterNewline || lineStarting,
                source[lineStart..<end].allSatisfy({ $0 == " " || $0 == "\t" })
            {
                end = lineStart
            }
        }
        return String(scalars: source[range.lowerBound..<end])
    }

    /// Consumes the whitespace control after a closing delimiter: `-` strips
    /// all following whitespace, a plain block or comment end eats one newline
    /// (trim_blocks), `+` keeps everything.
    private mutating func consumeAfterEnd(sign: Unicode.Scalar?, trimsNewline: Bool) {
        let start = pos
        if sign == "-" {
            while pos < source.count && isPythonSpace(source[pos]) { pos += 1 }
        } else if sign == nil && trimsNewline && pos < source.count && source[pos] == "\n" {
            pos += 1
        }
        lineStarting = pos > start && source[pos - 1] == "\n"
    }

    private mutating func skipComment(from start: Int) throws {
        while pos < source.count {
            if matches("#}", at: pos) || matches("-#}", at: pos) || matches("+#}", at: pos) {
                let sign: Unicode.Scalar? = source[pos] == "#" ? nil : source[pos]
                pos += sign == nil ? 2 : 3
                consumeAfterEnd(sign: sign, trimsNewline: true)
                return
            }
            pos += 1
        }
        throw syntaxError("missing end of comment tag", at: start)
    }

    /// `{% raw %}...{% endraw %}` copies its content through untouched.
    /// Returns false when the block tag is not `raw`.
    private mutating func lexRaw(start: Int) throws -> Bool {
        var i = skipSpaces(from: pos)
        guard matches("raw", at: i) else { return false }
        i = skipSpaces(from: i + 3)
        let sign: Unicode.Scalar?
        if matches("-%}", at: i) { sign = "-" } else if matches("%}", at: i) { sign = nil } else { return false }
        pos = i + (sign == nil ? 2 : 3)
        // Unlike other block tags, `{% raw %}` does not take trim_blocks' newline.
        consumeAfterEnd(sign: sign, trimsNewline: false)
        let contentStart = pos
        while pos < source.count {
            if let (endStart, innerSign, afterTag) = endRawTag(at: pos) {
                let text = controlledText(contentStart..<endStart, sign: innerSign, isVariable: false)
                if !text.isEmpty { emit(.text(text), at: contentStart) }
                pos = afterTag.position
                consumeAfterEnd(sign: afterTag.sign, trimsNewline: true)
                return true
            }
            pos += 1
        }
        throw syntaxError("missing end of raw directive", at: start)
    }

    private func endRawTag(at i: Int) -> (Int, Unicode.Scalar?, (position: Int, sign: Unicode.Scalar?))? {
        guard matches("{%", at: i) else { return nil }
        var j = i + 2
        var innerSign: Unicode.Scalar? = nil
        if j < source.count, source[j] == "-" || source[j] == "+" { innerSign = source[j]; j += 1 }
        j = skipSpaces(from: j)
        guard matches("endraw", at: j) else { return nil }
        j = skipSpaces(from: j + 6)
        for (literal, sign) in [("-%}", "-"), ("+%}", "+"), ("%}", nil)] as [(String, Unicode.Scalar?)]
        where matches(literal, at: j) {
            return (i, innerSign, (j + literal.unicodeScalars.count, sign))
        }
        return nil
    }

    private func skipSpaces(from offset: Int) -> Int {
        var i = offset
        while i < source.count && isPythonSpace(source[i]) { i += 1 }
        return i
    }

    // MARK: - Inside tags

    private mutating func lexTag(variable: Bool, start: Int) throws {
        emit(variable ? .variableBegin : .blockBegin, at: start)
        var brackets: [(Unicode.Scalar, Int)] = []
        while true {
            pos = skipSpaces(from: pos)
            guard pos < source.count else {
                throw syntaxError("unexpected end of template, tag opened here was never closed", at: start)
            }
            if brackets.isEmpty, try lexTagEnd(variable: variable) { return }
            try lexExpressionToken(brackets: &brackets)
        }
    }

    /// jinja2 ignores `}}` and `%}` while brackets are open, so dict
    /// literals can end in `}}`; callers only ask when balanced.
    private mutating func lexTagEnd(variable: Bool) throws -> Bool {
        let close = variable ? "}}" : "%}"
        let sign: Unicode.Scalar?
        if matches(close, at: pos) {
            sign = nil
        } else if matches("-" + close, at: pos) {
            sign = "-"
        } else if !variable && matches("+" + close, at: pos) {
            sign = "+"
        } else {
            return false
        }
        emit(variable ? .variableEnd : .blockEnd, at: pos)
        pos += sign == nil ? 2 : 3
        consumeAfterEnd(sign: sign, trimsNewline: !variable)
        return true
    }

    private mutating func lexExpressionToken(brackets: inout [(Unicode.Scalar, Int)]) throws {
        let c = source[pos]
        if c.properties.numericType == .decimal && c.isASCII {
            try lexNumber()
        } else if c == "_" || (c.isASCII && c.properties.isAlphabetic) {
            let start = pos
            while pos < source.count, source[pos] == "_" || (source[pos].isASCII && source[pos].properties.isAlphabetic)
                || (source[pos].isASCII && source[pos].properties.numericType == .decimal)
            {
                pos += 1
            }
            emit(.name(String(scalars: source[start..<pos])), at: start)
        } else if c == "'" || c == "\"" {
            try lexString()
        } else {
            try lexOperator(brackets: &brackets)
        }
    }

    private mutating func lexOperator(brackets: inout [(Unicode.Scalar, Int)]) throws {
        let start = pos
        for op in ["//", "**", "==", "!=", ">=", "<="] where matches(op, at: pos) {
            pos += 2
            emit(.op(op), at: start)
            return
        }
        let c = source[pos]
        guard "+-/*%~[](){}><=.:|,;".unicodeScalars.contains(c) else {
            throw syntaxError("unexpected character '\(c)'", at: pos)
        }
        let pairs: [Unicode.Scalar: Unicode.Scalar] = [")": "(", "]": "[", "}": "{"]
        if c == "(" || c == "[" || c == "{" {
            brackets.append((c, pos))
        } else if let opener = pairs[c] {
            guard let last = brackets.popLast(), last.0 == opener else {
                throw syntaxError("unexpected '\(c)'", at: pos)
            }
        }
        pos += 1
        emit(.op(String(c)), at: start)
    }
}
