/// Expression grammar, lowest precedence first, mirroring jinja2's parser:
/// conditional, or, and, not, comparisons, + -, ~, * / // %, **, unary,
/// then postfix (attribute, subscript, call) and filters/tests.
extension JinjaParser {
    /// jinja2's `parse_tuple`: `a, b` without parentheses is a tuple.
    /// `withCondition: false` lets `for x in xs if c` keep its `if`.
    mutating func parseTuple(withCondition: Bool = true, extraEnd: Set<String> = []) throws -> Expr {
        let location = current.location
        var items: [Expr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            items.append(withCondition ? try parseExpression() : try parseOr())
            guard isOp(",") else { break }
            isTuple = true
        }
        if !isTuple {
            guard let only = items.first else { throw error("expected an expression, got \(describe(current))") }
            return only
        }
        return Expr(kind: .tuple(items), location: location)
    }

    private func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .eof: return true
        case .op(let op): return op == ")"
        case .name(let name): return extraEnd.contains(name)
        default: return false
        }
    }

    mutating func parseExpression() throws -> Expr {
        let expr = try parseOr()
        guard isName("if") else { return expr }
        let location = current.location
        advance()
        let condition = try parseOr()
        var otherwise: Expr? = nil
        if isName("else") {
            advance()
            otherwise = try parseExpression()
        }
        return Expr(kind: .conditional(condition: condition, then: expr, otherwise: otherwise), location: location)
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while isName("or") {
            let location = current.location
            advance()
            left = Expr(kind: .or(left, try parseAnd()), location: location)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while isName("and") {
            let location = current.location
            advance()
            left = Expr(kind: .and(left, try parseNot()), location: location)
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        guard isName("not") else { return try parseCompare() }
        let location = current.location
        advance()
        return Expr(kind: .not(try parseNot()), location: location)
    }

    private mutating func parseCompare() throws -> Expr {
        let location = current.location
        let left = try parseMath1()
        var operations: [(op: CompareOp, operand: Expr)] = []
        while true {
            let op: CompareOp
            if case .op(let symbol) = current.kind, let compareOp = CompareOp(rawValue: symbol) {
                op = compareOp
                advance()
            } else if isName("in") {
                op = .contains
                advance()
            } else if isName("not") && isName("in", peek(1)) {
                op = .notContains
                index += 2
            } else {
                break
            }
            operations.append((op, try parseMath1()))
        }
        return operations.isEmpty ? left : Expr(kind: .compare(left, operations), location: location)
    }

    private mutating func parseBinary(
        _ ops: [BinaryOp], _ next: (inout JinjaParser) throws -> Expr
    ) throws -> Expr {
        var left = try next(&self)
        while case .op(let symbol) = current.kind, let op = BinaryOp(rawValue: symbol), ops.contains(op) {
            let location = current.location
            advance()
            left = Expr(kind: .binary(op, left, try next(&self)), location: location)
        }
        return left
    }

    private mutating func parseMath1() throws -> Expr {
        try parseBinary([.add, .subtract]) { try $0.parseConcat() }
    }

    private mutating func parseConcat() throws -> Expr {
        try parseBinary([.concat]) { try $0.parseMath2() }
    }

    private mutating func parseMath2() throws -> Expr {
        try parseBinary([.multiply, .divide, .floorDivide, .modulo]) { try $0.parsePower() }
    }

    private mutating func parsePower() throws -> Expr {
        try parseBinary([.power]) { try $0.parseUnary() }
    }

    private mutating func parseUnary(withFilters: Bool = true) throws -> Expr {
        let location = current.location
        var expr: Expr
        if isOp("-") || isOp("+") {
            let op: UnaryOp = isOp("-") ? .negate : .plus
            advance()
            expr = Expr(kind: .unary(op, try parseUnary(withFilters: false)), location: location)
        } else {
            expr = try parsePrimary()
        }
        expr = try parsePostfix(expr)
        return withFilters ? try parseFiltersAndTests(expr) : expr
    }

    private mutating func parsePrimary() throws -> Expr {
        let token = current
        let location = token.location
        switch token.kind {
        case .name(let name):
            advance()
            switch name {
            case "true", "True": return Expr(kind: .literal(.bool(true)), location: location)
            case "false", "False": return Expr(kind: .literal(.bool(false)), location: location)
            case "none", "None": return Expr(kind: .literal(.none), location: location)
            default: return Expr(kind: .name(name), location: location)
            }
        case .string(var text):
            advance()
            // Adjacent literals concatenate, as in Python.
            while case .string(let more) = current.kind {
                text += more
                advance()
            }
            return Expr(kind: .literal(.string(text)), location: location)
        case .integer(let value):
            advance()
            return Expr(kind: .literal(.int(value)), location: location)
        case .float(let value):
            advance()
            return Expr(kind: .literal(.double(value)), location: location)
        case .op("("):
            advance()
            if isOp(")") {
                advance()
                return Expr(kind: .tuple([]), location: location)
            }
            let inner = try parseTuple()
            try expectOp(")")
            return inner
        case .op("["):
            return try parseList(location)
        case .op("{"):
            return try parseDict(location)
        default:
            throw error("unexpected \(describe(token))")
        }
    }

    private mutating func parseList(_ location: TemplateLocation) throws -> Expr {
        advance()
        var items: [Expr] = []
        while !isOp("]") {
            if !items.isEmpty { try expectOp(",") }
            if isOp("]") { break }
            items.append(try parseExpression())
        }
        advance()
        return Expr(kind: .list(items), location: location)
    }

    private mutating func parseDict(_ location: TemplateLocation) throws -> Expr {
        advance()
        var pairs: [(key: Expr, value: Expr)] = []
        while !isOp("}") {
            if !pairs.isEmpty { try expectOp(",") }
            if isOp("}") { break }
            let key = try parseExpression()
            try expectOp(":")
            pairs.append((key, try parseExpression()))
        }
        advance()
        return Expr(kind: .dict(pairs), location: location)
    }

    private mutating func parsePostfix(_ base: Expr) throws -> Expr {
        var expr = base
        while true {
            let location = current.location
            if isOp(".") {
                advance()
                switch current.kind {
                case .name(let name):
                    expr = Expr(kind: .attribute(expr, name), location: location)
                case .integer(let value):
                    let key = Expr(kind: .literal(.int(value)), location: current.location)
                    expr = Expr(kind: .item(expr, key), location: location)
                default:
                    throw error("expected an attribute name after '.', got \(describe(current))")
                }
                advance()
            } else if isOp("[") {
                advance()
                expr = try parseSubscript(expr, location)
                try expectOp("]")
            } else if isOp("(") {
                expr = Expr(kind: .call(expr, try parseCallArguments()), location: location)
            } else {
                return expr
            }
        }
    }

    /// `x[i]` or a Python slice `x[start:stop:step]` with any part omitted.
    private mutating func parseSubscript(_ base: Expr, _ location: TemplateLocation) throws -> Expr {
        var start: Expr? = nil
        if !isOp(":") {
            start = try parseExpression()
            guard isOp(":") else { return Expr(kind: .item(base, start!), location: location) }
        }
        advance()
        var stop: Expr? = nil
        var step: Expr? = nil
        if !isOp("]") && !isOp(":") { stop = try parseExpression() }
        if isOp(":") {
            advance()
            if !isOp("]") { step = try parseExpression() }
        }
        return Expr(kind: .slice(base, start: start, stop: stop, step: step), location: location)
    }

    mutating func parseCallArguments() throws -> Arguments {
        try expectOp("(")
        var arguments = Arguments()
        var first = true
        while !isOp(")") {
            if !first { try expectOp(",") }
            first = false
            if isOp(")") { break }
            if isOp("*") || isOp("**") {
                throw ChatTemplateError(.unsupported, "*args and **kwargs in calls are not supported", at: current.location)
            }
            if case .name(let name) = current.kind, isOp("=", peek(1)) {
                index += 2
                arguments.keyword.append((name, try parseExpression()))
            } else {
                guard arguments.keyword.isEmpty else {
                    throw error("positional argument follows keyword argument")
                }
                arguments.positional.append(try parseExpression())
            }
        }
        advance()
        return arguments
    }

    private mutating func parseFiltersAndTests(_ base: Expr) throws -> Expr {
        var expr = base
        while true {
            if isOp("|") {
                advance()
                expr = try parseFilter(expr)
            } else if isName("is") {
                advance()
                expr = try parseTest(expr)
            } else if isOp("(") {
                expr = Expr(kind: .call(expr, try parseCallArguments()), location: current.location)
            } else {
                return expr
            }
        }
    }

    private mutating func parseFilter(_ base: Expr) throws -> Expr {
        let location = current.location
        let name = try expectName()
        let arguments = isOp("(") ? try parseCallArguments() : Arguments()
        return Expr(kind: .filter(base, name: name, arguments), location: location)
    }

    /// `x is [not] name`, with arguments in parentheses or, as jinja2
    /// allows, one bare argument (`x is equalto 3`, `x is sameas none`).
    private mutating func parseTest(_ base: Expr) throws -> Expr {
        let location = current.location
        var negated = false
        if isName("not") {
            negated = true
            advance()
        }
        let name = try expectName()
        var arguments = Arguments()
        if isOp("(") {
            arguments = try parseCallArguments()
        } else if startsBareTestArgument() {
            arguments.positional = [try parsePostfix(try parsePrimary())]
        }
        let test = Expr(kind: .test(base, name: name, arguments), location: location)
        return negated ? Expr(kind: .not(test), location: location) : test
    }

    private func startsBareTestArgument() -> Bool {
        switch current.kind {
        case .name(let name): return !["else", "or", "and", "is", "if", "in", "not"].contains(name)
        case .string, .integer, .float: return true
        case .op(let op): return op == "[" || op == "{"
        default: return false
        }
    }
}
