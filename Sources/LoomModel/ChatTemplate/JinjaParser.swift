/// Builds the AST from tokens. Statements are parsed here, expressions in
/// `JinjaParser+Expressions.swift`; the grammar and precedence follow
/// jinja2's parser so templates bind the way their authors tested them.
struct JinjaParser {
    let tokens: [JinjaToken]
    var index = 0
    private(set) var macros: [MacroDefinition] = []
    /// `break` and `continue` are only valid inside a loop (jinja2 checks
    /// this when parsing, not when running).
    private var loopDepth = 0

    /// Tags jinja2 has but this interpreter deliberately leaves out; chat
    /// templates are self-contained and never need them.
    private static let unsupportedTags: Set<String> = [
        "include", "extends", "import", "from", "block", "call", "autoescape", "do", "trans",
        "pluralize", "debug", "endblock", "endcall",
    ]

    static func parse(_ tokens: [JinjaToken]) throws -> (nodes: [Node], macros: [MacroDefinition]) {
        var parser = JinjaParser(tokens: tokens)
        let (nodes, _) = try parser.parseBody(until: [])
        try JinjaValidator(macros: parser.macros).check(nodes, soft: false)
        return (nodes, parser.macros)
    }

    private init(tokens: [JinjaToken]) {
        self.tokens = tokens
    }

    // MARK: - Token helpers

    var current: JinjaToken { tokens[index] }

    func peek(_ offset: Int) -> JinjaToken {
        tokens[min(index + offset, tokens.count - 1)]
    }

    mutating func advance() {
        if index < tokens.count - 1 { index += 1 }
    }

    func isName(_ name: String, _ token: JinjaToken? = nil) -> Bool {
        (token ?? current).kind == .name(name)
    }

    func isOp(_ op: String, _ token: JinjaToken? = nil) -> Bool {
        (token ?? current).kind == .op(op)
    }

    func error(_ message: String, _ token: JinjaToken? = nil) -> ChatTemplateError {
        ChatTemplateError(.syntax, message, at: (token ?? current).location)
    }

    mutating func expectOp(_ op: String) throws {
        guard isOp(op) else { throw error("expected '\(op)', got \(describe(current))") }
        advance()
    }

    mutating func expectName() throws -> String {
        guard case .name(let name) = current.kind else {
            throw error("expected a name, got \(describe(current))")
        }
        advance()
        return name
    }

    mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw error("expected end of statement '%}', got \(describe(current))") }
        advance()
    }

    func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .text: return "template text"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .integer(let i): return "integer \(i)"
        case .float(let d): return "number \(d)"
        case .op(let op): return "'\(op)'"
        case .eof: return "end of template"
        }
    }

    // MARK: - Template structure

    /// Parses nodes until one of `endTags` opens a block; returns with that
    /// tag's name consumed (its `%}` is left for the caller, since `elif`
    /// carries a condition).
    private mutating func parseBody(until endTags: Set<String>) throws -> (nodes: [Node], endTag: String?) {
        var nodes: [Node] = []
        while true {
            let token = current
            switch token.kind {
            case .text(let text):
                nodes.append(.text(text))
                advance()
            case .variableBegin:
                advance()
                let expr = try parseTuple()
                guard current.kind == .variableEnd else { throw error("expected '}}', got \(describe(current))") }
                advance()
                nodes.append(.output(expr))
            case .blockBegin:
                advance()
                if case .name(let name) = current.kind, endTags.contains(name) {
                    advance()
                    return (nodes, name)
                }
                nodes.append(try parseStatement())
            case .eof:
                guard endTags.isEmpty else {
                    let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw error("unexpected end of template, expected \(expected)")
                }
                return (nodes, nil)
            default:
                throw error("unexpected \(describe(token))")
            }
        }
    }

    private mutating func parseStatement() throws -> Node {
        let token = current
        let keyword = try expectName()
        switch keyword {
        case "if": return try parseIf()
        case "for": return try parseFor(token.location)
        case "set": return try parseSet(token.location)
        case "macro": return try parseMacro(token.location)
        case "with": return try parseWith()
        case "filter": return try parseFilterBlock(token.location)
        case "generation":
            // transformers' AssistantTracker extension: marks assistant text
            // for masks, renders its body unchanged.
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .with([], body)
        case "break", "continue":
            guard loopDepth > 0 else { throw error("'\(keyword)' outside of a loop", token) }
            try expectBlockEnd()
            return keyword == "break" ? .breakLoop(token.location) : .continueLoop(token.location)
        default:
            if Self.unsupportedTags.contains(keyword) {
                throw ChatTemplateError(.unsupported, "the '{% \(keyword) %}' tag is not supported", at: token.location)
            }
            throw error("unknown tag '\(keyword)'", token)
        }
    }

    private mutating func parseIf() throws -> Node {
        var branches: [(condition: Expr, body: [Node])] = []
        var condition = try parseTuple()
        while true {
            try expectBlockEnd()
            let (body, endTag) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            switch endTag {
            case "elif":
                condition = try parseTuple()
            case "else":
                try expectBlockEnd()
                let (elseBody, _) = try parseBody(until: ["endif"])
                try expectBlockEnd()
                return .ifChain(branches: branches, elseBody: elseBody)
            default:
                try expectBlockEnd()
                return .ifChain(branches: branches, elseBody: [])
            }
        }
    }

    private mutating func parseFor(_ location: TemplateLocation) throws -> Node {
        let target = try parseAssignTarget(allowNamespace: false)
        guard isName("in") else { throw error("expected 'in', got \(describe(current))") }
        advance()
        let iterable = try parseTuple(withCondition: false, extraEnd: ["recursive"])
        var condition: Expr? = nil
        if isName("if") {
            advance()
            condition = try parseExpression()
        }
        if isName("recursive") {
            throw ChatTemplateError(.unsupported, "recursive for loops are not supported", at: current.location)
        }
        try expectBlockEnd()
        loopDepth += 1
        let (body, endTag) = try parseBody(until: ["endfor", "else"])
        loopDepth -= 1
        var elseBody: [Node] = []
        if endTag == "else" {
            try expectBlockEnd()
            (elseBody, _) = try parseBody(until: ["endfor"])
        }
        try expectBlockEnd()
        return .forLoop(
            ForLoop(
                target: target, iterable: iterable, condition: condition,
                body: body, elseBody: elseBody, location: location))
    }

    private mutating func parseSet(_ location: TemplateLocation) throws -> Node {
        let target = try parseAssignTarget(allowNamespace: true)
        if isOp("=") {
            advance()
            let value = try parseTuple()
            try expectBlockEnd()
            return .set(target, value, location)
        }
        guard case .name(let name) = target, current.kind == .blockEnd else {
            if isOp("|") {
                throw ChatTemplateError(.unsupported, "filtered block set is not supported", at: current.location)
            }
            throw error("expected '=' or '%}' in set, got \(describe(current))")
        }
        advance()
        let (body, _) = try parseBody(until: ["endset"])
        try expectBlockEnd()
        return .setBlock(name, body)
    }

    /// `name`, `ns.attr` (set only), or `a, b` / `(a, b)` for unpacking.
    private mutating func parseAssignTarget(allowNamespace: Bool) throws -> AssignTarget {
        if allowNamespace, case .name(let base) = current.kind, isOp(".", peek(1)),
            case .name(let attribute) = peek(2).kind
        {
            index += 3
            return .attribute(base, attribute)
        }
        let parenthesized = isOp("(")
        if parenthesized { advance() }
        var names = [try expectName()]
        while isOp(",") {
            advance()
            if parenthesized && isOp(")") { break }
            names.append(try expectName())
        }
        if parenthesized { try expectOp(")") }
        return names.count == 1 && !parenthesized ? .name(names[0]) : .tuple(names)
    }

    private mutating func parseMacro(_ location: TemplateLocation) throws -> Node {
        let name = try expectName()
        try expectOp("(")
        var parameters: [(name: String, defaultValue: Expr?)] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let parameter = try expectName()
            var defaultValue: Expr? = nil
            if isOp("=") {
                advance()
                defaultValue = try parseExpression()
            } else if parameters.last?.defaultValue != nil {
                throw error("non-default argument '\(parameter)' follows default argument")
            }
            parameters.append((parameter, defaultValue))
        }
        advance()
        try expectBlockEnd()
        let outerLoopDepth = loopDepth
        loopDepth = 0  // a loop around the definition does not enclose the body
        let (body, _) = try parseBody(until: ["endmacro"])
        loopDepth = outerLoopDepth
        try expectBlockEnd()
        macros.append(MacroDefinition(name: name, parameters: parameters, body: body, location: location))
        return .macro(macros.count - 1)
    }

    private mutating func parseWith() throws -> Node {
        var bindings: [(name: String, value: Expr)] = []
        while current.kind != .blockEnd {
            if !bindings.isEmpty { try expectOp(",") }
            let name = try expectName()
            try expectOp("=")
            bindings.append((name, try parseExpression()))
        }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endwith"])
        try expectBlockEnd()
        return .with(bindings, body)
    }

    private mutating func parseFilterBlock(_ location: TemplateLocation) throws -> Node {
        let name = try expectName()
        let arguments = isOp("(") ? try parseCallArguments() : Arguments()
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endfilter"])
        try expectBlockEnd()
        return .filterBlock(name: name, arguments, body, location)
    }
}
