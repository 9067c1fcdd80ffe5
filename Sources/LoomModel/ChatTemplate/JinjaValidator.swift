/// jinja2's compile-time check for unknown filters and tests. Like jinja2,
/// it only rejects them outside `if` statements and `a if c else b`
/// ("soft" contexts): templates guard optional filters behind conditions
/// (DeepSeek's `from_json`), and there the error waits until the branch
/// actually runs. Loops, macros and other scoped blocks start a fresh,
/// strict context, as jinja2's inner frames do.
struct JinjaValidator {
    let macros: [MacroDefinition]

    func check(_ nodes: [Node], soft: Bool) throws {
        for node in nodes { try check(node, soft: soft) }
    }

    private func check(_ node: Node, soft: Bool) throws {
        switch node {
        case .text, .breakLoop, .continueLoop:
            break
        case .output(let expr), .set(_, let expr, _):
            try check(expr, soft: soft)
        case .ifChain(let branches, let elseBody):
            for branch in branches {
                try check(branch.condition, soft: true)
                try check(branch.body, soft: true)
            }
            try check(elseBody, soft: true)
        case .forLoop(let loop):
            try check(loop.iterable, soft: soft)
            if let condition = loop.condition { try check(condition, soft: false) }
            try check(loop.body, soft: false)
            try check(loop.elseBody, soft: soft)
        case .setBlock(_, let body):
            try check(body, soft: false)
        case .macro(let index):
            for parameter in macros[index].parameters {
                if let value = parameter.defaultValue { try check(value, soft: false) }
            }
            try check(macros[index].body, soft: false)
        case .with(let bindings, let body):
            for binding in bindings { try check(binding.value, soft: soft) }
            try check(body, soft: false)
        case .filterBlock(let name, let arguments, let body, let location):
            try checkName(name, filter: true, soft: soft, location)
            try check(arguments, soft: soft)
            try check(body, soft: false)
        }
    }

    private func check(_ arguments: Arguments, soft: Bool) throws {
        for argument in arguments.positional { try check(argument, soft: soft) }
        for argument in arguments.keyword { try check(argument.value, soft: soft) }
    }

    private func checkName(_ name: String, filter: Bool, soft: Bool, _ location: TemplateLocation) throws {
        let known = filter ? JinjaFilters.names.contains(name) : JinjaTests.names.contains(name)
        guard known || soft else {
            throw ChatTemplateError(.unsupported, "unknown \(filter ? "filter" : "test") '\(name)'", at: location)
        }
    }

    private func check(_ expr: Expr, soft: Bool) throws {
        switch expr.kind {
        case .literal, .name:
            break
        case .list(let items), .tuple(let items):
            for item in items { try check(item, soft: soft) }
        case .dict(let pairs):
            for pair in pairs {
                try check(pair.key, soft: soft)
                try check(pair.value, soft: soft)
            }
        case .attribute(let base, _), .unary(_, let base), .not(let base):
            try check(base, soft: soft)
        case .item(let base, let other), .binary(_, let base, let other), .and(let base, let other),
            .or(let base, let other):
            try check(base, soft: soft)
            try check(other, soft: soft)
        case .slice(let base, let start, let stop, let step):
            for part in [base, start, stop, step].compactMap({ $0 }) { try check(part, soft: soft) }
        case .call(let callee, let arguments):
            try check(callee, soft: soft)
            try check(arguments, soft: soft)
        case .filter(let base, let name, let arguments), .test(let base, let name, let arguments):
            if case .filter = expr.kind {
                try checkName(name, filter: true, soft: soft, expr.location)
            } else {
                try checkName(name, filter: false, soft: soft, expr.location)
            }
            try check(base, soft: soft)
            try check(arguments, soft: soft)
        case .compare(let first, let operations):
            try check(first, soft: soft)
            for operation in operations { try check(operation.operand, soft: soft) }
        case .conditional(let condition, let then, let otherwise):
            for part in [condition, then, otherwise].compactMap({ $0 }) { try check(part, soft: true) }
        }
    }
}
