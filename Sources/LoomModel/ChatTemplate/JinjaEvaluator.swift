/// Runs a parsed template once. It holds the mutable state of a single
/// render (scopes, namespace objects), so `ChatTemplate.render` creates a
/// fresh one per call and the parsed template itself stays immutable.
///
/// Scoping follows jinja2: `for` bodies (each iteration afresh), macros and
/// `with` get their own frame; `if` does not, so a `set` inside an `if`
/// changes the enclosing scope, while one inside a loop never leaks out.
final class JinjaEvaluator {
    enum Flow { case normal, breakLoop, continueLoop }

    let macros: [MacroDefinition]
    var scopes: [[String: JinjaValue]]
    /// Attributes of every `namespace()` made in this render, by handle id.
    var namespaces: [JinjaObject] = []
    var macroDepth = 0

    static let builtins: Set<String> = ["range", "namespace", "raise_exception", "strftime_now", "dict"]

    init(macros: [MacroDefinition], context: [String: JinjaValue]) {
        self.macros = macros
        self.scopes = [context]
    }

    func render(_ nodes: [Node]) throws -> String {
        var out = ""
        _ = try execute(nodes, into: &out)
        return out
    }

    func lookup(_ name: String) -> JinjaValue {
        for frame in scopes.reversed() {
            if let value = frame[name] { return value }
        }
        if Self.builtins.contains(name) { return .callable(JinjaCallable(kind: .builtin(name))) }
        return .undefined
    }

    /// Attaches `location` to errors from helpers that don't know where in
    /// the template they were called from.
    func at<T>(_ location: TemplateLocation, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ChatTemplateError where error.location == nil && error.code != .raised {
            throw ChatTemplateError(error.code, error.message, at: location)
        }
    }

    func withScope<T>(_ frame: [String: JinjaValue], _ body: () throws -> T) rethrows -> T {
        scopes.append(frame)
        defer { scopes.removeLast() }
        return try body()
    }

    // MARK: - Statements

    func execute(_ nodes: [Node], into out: inout String) throws -> Flow {
        for node in nodes {
            let flow = try execute(node, into: &out)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(_ node: Node, into out: inout String) throws -> Flow {
        switch node {
        case .text(let text):
            out += text
        case .output(let expr):
            out += try evaluate(expr).pythonString
        case .ifChain(let branches, let elseBody):
            for branch in branches where try evaluate(branch.condition).isTruthy {
                return try execute(branch.body, into: &out)
            }
            return try execute(elseBody, into: &out)
        case .forLoop(let loop):
            try executeFor(loop, into: &out)
        case .set(let target, let expr, let location):
            try assign(target, try evaluate(expr), location)
        case .setBlock(let name, let body):
            var captured = ""
            let flow = try withScope([:]) { try execute(body, into: &captured) }
            scopes[scopes.count - 1][name] = .string(captured)
            return flow
        case .macro(let index):
            scopes[scopes.count - 1][macros[index].name] = .callable(JinjaCallable(kind: .macro(index)))
        case .with(let bindings, let body):
            var frame: [String: JinjaValue] = [:]
            for binding in bindings { frame[binding.name] = try evaluate(binding.value) }
            return try withScope(frame) { try execute(body, into: &out) }
        case .filterBlock(let name, let arguments, let body, let location):
            var captured = ""
            let flow = try withScope([:]) { try execute(body, into: &captured) }
            let args = try evaluateArguments(arguments)
            out += try at(location) { try JinjaFilters.apply(name, .string(captured), args) }.pythonString
            return flow
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func executeFor(_ loop: ForLoop, into out: inout String) throws {
        let iterable = try evaluate(loop.iterable)
        var items = try at(loop.iterable.location) { try JinjaAccess.iterate(iterable) }
        if let condition = loop.condition {
            items = try items.filter { item in
                try withScope(try bindings(loop.target, item, loop.location)) { try evaluate(condition).isTruthy }
            }
        }
        if items.isEmpty {
            _ = try withScope([:]) { try execute(loop.elseBody, into: &out) }
            return
        }
        for index in items.indices {
            var frame = try bindings(loop.target, items[index], loop.location)
            frame["loop"] = loopObject(index, items)
            if try withScope(frame, { try execute(loop.body, into: &out) }) == .breakLoop { break }
        }
    }

    /// jinja2's `loop` variable. A dict, since templates only read it.
    private func loopObject(_ index: Int, _ items: [JinjaValue]) -> JinjaValue {
        let count = items.count
        var loop: JinjaObject = [
            "index": .int(index + 1), "index0": .int(index),
            "revindex": .int(count - index), "revindex0": .int(count - index - 1),
            "first": .bool(index == 0), "last": .bool(index == count - 1),
            "length": .int(count), "depth": 1, "depth0": 0,
        ]
        if index > 0 { loop["previtem"] = items[index - 1] }
        if index + 1 < count { loop["nextitem"] = items[index + 1] }
        return .object(loop)
    }

    private func bindings(_ target: AssignTarget, _ value: JinjaValue, _ location: TemplateLocation) throws
        -> [String: JinjaValue]
    {
        switch target {
        case .name(let name):
            return [name: value]
        case .tuple(let names):
            let items = try at(location) { try JinjaAccess.iterate(value) }
            guard items.count == names.count else {
                throw ChatTemplateError(
                    .value, "cannot unpack \(items.count) value(s) into \(names.count) name(s)", at: location)
            }
            return Dictionary(zip(names, items), uniquingKeysWith: { _, last in last })
        case .attribute:
            throw ChatTemplateError(.syntax, "cannot loop into an attribute", at: location)
        }
    }

    private func assign(_ target: AssignTarget, _ value: JinjaValue, _ location: TemplateLocation) throws {
        guard case .attribute(let base, let attribute) = target else {
            for (name, item) in try bindings(target, value, location) { scopes[scopes.count - 1][name] = item }
            return
        }
        guard case .namespace(let namespace) = lookup(base) else {
            throw ChatTemplateError(
                .type, "cannot assign attribute '\(attribute)' on '\(base)', which is not a namespace", at: location)
        }
        namespaces[namespace.id][attribute] = value
    }

    // MARK: - Macros

    func callMacro(_ index: Int, _ arguments: CallArguments) throws -> JinjaValue {
        let macro = macros[index]
        guard arguments.positional.count <= macro.parameters.count else {
            throw ChatTemplateError(
                .type, "macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)")
        }
        for (name, _) in arguments.keyword where !macro.parameters.contains(where: { $0.name == name }) {
            throw ChatTemplateError(.type, "macro '\(macro.name)' takes no keyword argument '\(name)'")
        }
        guard macroDepth < 100 else { throw ChatTemplateError(.value, "macro recursion is too deep") }
        // Macros see the template's top-level names, not the caller's locals.
        let saved = scopes
        scopes = [scopes[0], [:]]
        macroDepth += 1
        defer {
            scopes = saved
            macroDepth -= 1
        }
        for (position, parameter) in macro.parameters.enumerated() {
            let value: JinjaValue
            if position < arguments.positional.count {
                value = arguments.positional[position]
            } else if let keyword = arguments.keyword.first(where: { $0.name == parameter.name }) {
                value = keyword.value
            } else if let defaultValue = parameter.defaultValue {
                value = try evaluate(defaultValue)
            } else {
                value = .undefined
            }
            scopes[1][parameter.name] = value
        }
        var out = ""
        _ = try execute(macro.body, into: &out)
        return .string(out)
    }
}
