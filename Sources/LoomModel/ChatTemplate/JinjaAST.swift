/// The parsed form of a template. Built once by `JinjaParser` and only read
/// afterwards, so a `ChatTemplate` can be shared and rendered concurrently.

struct Expr: Sendable {
    indirect enum Kind: Sendable {
        case literal(JinjaValue)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(key: Expr, value: Expr)])
        /// `a.b`: Python getattr first, then item lookup (jinja2's `getattr`).
        case attribute(Expr, String)
        /// `a[b]`: item lookup first, then getattr (jinja2's `getitem`).
        case item(Expr, Expr)
        case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
        case call(Expr, Arguments)
        case filter(Expr, name: String, Arguments)
        case test(Expr, name: String, Arguments)
        case unary(UnaryOp, Expr)
        case binary(BinaryOp, Expr, Expr)
        /// Python chains comparisons: `a < b < c` is `a < b and b < c`.
        case compare(Expr, [(op: CompareOp, operand: Expr)])
        case and(Expr, Expr)
        case or(Expr, Expr)
        case not(Expr)
        /// `a if c else b`; jinja2 allows leaving out `else` (undefined then).
        case conditional(condition: Expr, then: Expr, otherwise: Expr?)
    }

    var kind: Kind
    var location: TemplateLocation
}

struct Arguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(name: String, value: Expr)] = []
}

enum UnaryOp: String, Sendable { case negate = "-", plus = "+" }

enum BinaryOp: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//"
    case modulo = "%", power = "**", concat = "~"
}

enum CompareOp: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case contains = "in", notContains = "not in"
}

/// What `set` and `for` assign to.
enum AssignTarget: Sendable {
    case name(String)
    /// `set ns.attr = ...`; only namespaces accept this.
    case attribute(String, String)
    /// `for key, value in ...` unpacking.
    case tuple([String])
}

struct ForLoop: Sendable {
    var target: AssignTarget
    var iterable: Expr
    /// `for x in xs if cond`: filters before loop.index/length are counted.
    var condition: Expr?
    var body: [Node]
    var elseBody: [Node]
    var location: TemplateLocation
}

struct MacroDefinition: Sendable {
    var name: String
    var parameters: [(name: String, defaultValue: Expr?)]
    var body: [Node]
    var location: TemplateLocation
}

indirect enum Node: Sendable {
    case text(String)
    case output(Expr)
    case ifChain(branches: [(condition: Expr, body: [Node])], elseBody: [Node])
    case forLoop(ForLoop)
    case set(AssignTarget, Expr, TemplateLocation)
    /// `{% set x %}...{% endset %}` captures rendered output.
    case setBlock(String, [Node])
    /// Defines a macro (by index into the template's macro table) in scope.
    case macro(Int)
    /// `{% with a = 1 %}` opens a scope with extra names.
    case with([(name: String, value: Expr)], [Node])
    /// `{% filter upper %}...{% endfilter %}` filters the rendered body.
    case filterBlock(name: String, Arguments, [Node], TemplateLocation)
    case breakLoop(TemplateLocation)
    case continueLoop(TemplateLocation)
}
