extension JinjaEvaluator {
    func evaluate(_ expr: Expr) throws -> JinjaValue {
        switch expr.kind {
        case .literal(let value): return value
        case .name(let name): return lookup(name)
        case .list(let items), .tuple(let items): return .array(try items.map(evaluate))
        case .dict(let pairs): return try evaluateDict(pairs)
        case .attribute(let base, let name):
            let value = try evaluate(base)
            return try attribute(of: value, name, base: base)
        case .item(let base, let keyExpr):
            let value = try evaluate(base)
            let key = try evaluate(keyExpr)
            if value.isUndefined { throw undefinedError(base) }
            if case .namespace = value, case .string(let name) = key { return try attribute(of: value, name, base: base) }
            return JinjaAccess.item(value, key)
        case .slice(let base, let start, let stop, let step):
            let value = try evaluate(base)
            if value.isUndefined { throw undefinedError(base) }
            let bounds = try [start, stop, step].map { try $0.map(evaluate) ?? .none }
            return try at(expr.location) {
                try JinjaAccess.slice(value, start: bounds[0], stop: bounds[1], step: bounds[2])
            }
        case .call(let callee, let arguments): return try call(callee, arguments, expr.location)
        case .filter(let base, let name, let arguments):
            let value = try evaluate(base)
            let args = try evaluateArguments(arguments)
            return try naming(base, value, expr.location) { try JinjaFilters.apply(name, value, args) }
        case .test(let base, let name, let arguments):
            let value = try evaluate(base)
            let args = try evaluateArguments(arguments)
            return .bool(try naming(base, value, expr.location) { try JinjaTests.apply(name, value, args) })
        default:
            return try evaluateOperator(expr)
        }
    }

    private func evaluateOperator(_ expr: Expr) throws -> JinjaValue {
        switch expr.kind {
        case .unary(let op, let operand):
            let value = try evaluate(operand)
            if value.isUndefined { throw undefinedError(operand) }
            return try at(expr.location) { try JinjaOperators.unary(op, value) }
        case .binary(let op, let left, let right):
            let a = try evaluate(left)
            let b = try evaluate(right)
            if op != .concat {
                if a.isUndefined { throw undefinedError(left) }
                if b.isUndefined { throw undefinedError(right) }
            }
            return try at(expr.location) { try JinjaOperators.binary(op, a, b) }
        case .compare(let first, let operations):
            var leftExpr = first
            var left = try evaluate(first)
            for (op, rightExpr) in operations {
                let right = try evaluate(rightExpr)
                let result = try naming(leftExpr, left, expr.location) {
                    try naming(rightExpr, right, expr.location) { try JinjaOperators.compare(op, left, right) }
                }
                guard result else { return .bool(false) }
                (leftExpr, left) = (rightExpr, right)
            }
            return .bool(true)
        case .and(let left, let right):
            let a = try evaluate(left)
            return a.isTruthy ? try evaluate(right) : a
        case .or(let left, let right):
            let a = try evaluate(left)
            return a.isTruthy ? a : try evaluate(right)
        case .not(let operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map(evaluate) ?? .undefined
        default:
            preconditionFailure("evaluate handles every other expression kind")
        }
    }

    private func evaluateDict(_ pairs: [(key: Expr, value: Expr)]) throws -> JinjaValue {
        var object = JinjaObject()
        for (keyExpr, valueExpr) in pairs {
            let keyValue = try evaluate(keyExpr)
            guard let key = JinjaObject.Key(keyValue) else {
                throw ChatTemplateError(.type, "unhashable or unsupported dict key type '\(keyValue.typeName)'", at: keyExpr.location)
            }
            object[key] = try evaluate(valueExpr)
        }
        return .object(object)
    }

    func evaluateArguments(_ arguments: Arguments) throws -> CallArguments {
        CallArguments(
            positional: try arguments.positional.map(evaluate),
            keyword: try arguments.keyword.map { ($0.name, try evaluate($0.value)) })
    }

    /// jinja2's default Undefined lets a missing value be printed or tested
    /// but refuses to look inside it or compute with it.
    func undefinedError(_ expr: Expr) -> ChatTemplateError {
        ChatTemplateError(.undefined, "'\(describe(expr))' is undefined", at: expr.location)
    }

    /// Like `at`, and when a helper refuses an undefined `value`, names the
    /// expression that produced it, as jinja2's "'x' is undefined" does.
    private func naming<T>(_ expr: Expr, _ value: JinjaValue, _ location: TemplateLocation, _ body: () throws -> T)
        throws -> T
    {
        do {
            return try at(location, body)
        } catch let error as ChatTemplateError where error.code == .undefined && value.isUndefined {
            throw undefinedError(expr)
        }
    }

    private func attribute(of value: JinjaValue, _ name: String, base: Expr) throws -> JinjaValue {
        switch value {
        case .undefined: throw undefinedError(base)
        case .namespace(let namespace): return namespaces[namespace.id][name] ?? .undefined
        default: return JinjaAccess.attribute(value, name)
        }
    }

    /// Template-like text for an expression, to name it in errors.
    private func describe(_ expr: Expr) -> String {
        switch expr.kind {
        case .name(let name): return name
        case .attribute(let base, let name): return describe(base) + "." + name
        case .item(let base, let key):
            if case .literal(let value) = key.kind { return describe(base) + "[" + value.pythonRepr + "]" }
            return describe(base) + "[...]"
        case .call(let callee, _): return describe(callee) + "(...)"
        case .filter(let base, let name, _): return describe(base) + "|" + name
        case .literal(let value): return value.pythonRepr
        default: return "expression"
        }
    }

    private func call(_ calleeExpr: Expr, _ arguments: Arguments, _ location: TemplateLocation) throws -> JinjaValue {
        let callee = try evaluate(calleeExpr)
        let args = try evaluateArguments(arguments)
        guard case .callable(let callable) = callee else {
            if callee.isUndefined { throw undefinedError(calleeExpr) }
            throw ChatTemplateError(.type, "'\(callee.typeName)' object is not callable", at: location)
        }
        return try at(location) {
            switch callable.kind {
            case .builtin(let name): return try callBuiltin(name, args)
            case .macro(let index): return try callMacro(index, args)
            case .method(let receiver, let name): return try JinjaMethods.call(receiver, name, args)
            }
        }
    }

    private func callBuiltin(_ name: String, _ arguments: CallArguments) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            let message = try arguments.bind(["message"], function: name)[0] ?? .undefined
            throw ChatTemplateError(.raised, message.pythonString)
        case "namespace", "dict":
            var attributes = JinjaObject()
            for value in arguments.positional {
                guard case .object(let initial) = value else {
                    throw ChatTemplateError(.type, "\(name)() positional argument must be a dict")
                }
                for (key, item) in initial.pairs { attributes[key] = item }
            }
            for (key, value) in arguments.keyword { attributes[key] = value }
            if name == "dict" { return .object(attributes) }
            namespaces.append(attributes)
            return .namespace(JinjaNamespace(id: namespaces.count - 1))
        case "range":
            return try JinjaGlobals.range(arguments)
        case "strftime_now":
            return try JinjaGlobals.strftimeNow(arguments)
        default:
            throw ChatTemplateError(.unsupported, "unknown function '\(name)'")
        }
    }
}
