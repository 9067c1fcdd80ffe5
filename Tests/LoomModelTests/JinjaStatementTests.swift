import LoomModel
import Testing

// Expected outputs were produced by jinja2 3.1.6 configured as transformers
// configures it (trim_blocks, lstrip_blocks, loopcontrols, its tojson).

/// Control structures and jinja2's scoping: loops get a fresh scope per
/// iteration, `if` does not, namespaces and macros.
private let jinjaStatementsCases: [JinjaCase] = [
    JinjaCase(
        "loop variables",
        #"{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}"#,
        context: #"{"xs": ["a", "b", "c"]}"#,
        expected: "1032TrueFalse3b;2121FalseFalse3ac;3210FalseTrue3b;"),
    JinjaCase(
        "nested loops shadow loop",
        #"{% for x in xs %}{% for y in xs %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}"#,
        context: #"{"xs": [1, 2]}"#,
        expected: #"121|122|"#),
    JinjaCase(
        "loop filter counts filtered items",
        #"{% for x in xs if x > 1 %}{{ loop.index }}:{{ x }}/{{ loop.length }} {% else %}none{% endfor %}"#,
        context: #"{"xs": [1, 2, 3]}"#,
        expected: "1:2/2 2:3/2 "),
    JinjaCase(
        "loop else when the filter removes everything",
        #"{% for x in xs if x > 5 %}{{ x }}{% else %}none{% endfor %}"#,
        context: #"{"xs": [1, 2, 3]}"#,
        expected: "none"),
    JinjaCase(
        "unpacking",
        #"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}|{% for (a, b) in [(1, 2)] %}{{ a }}{{ b }}{% endfor %}"#,
        expected: #"37|12"#),
    JinjaCase(
        "iterating strings and dicts",
        #"{% for c in 'abc' %}{{ c }}-{% endfor %}|{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"#,
        expected: #"a-b-c-|xy"#),
    JinjaCase(
        "break and continue",
        #"{% for x in xs %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in xs %}{% if x is odd %}{% continue %}{% endif %}{{ x }}{% endfor %}"#,
        context: #"{"xs": [1, 2, 3, 4]}"#,
        expected: #"1|24"#),
    JinjaCase(
        "break only leaves the inner loop",
        #"{% for x in [1,2] %}{% for y in [1,2] %}{% if y == 2 %}{% break %}{% endif %}{{ x }}{{ y }} {% endfor %}{% endfor %}"#,
        expected: "11 21 "),
    JinjaCase(
        "set in a loop does not leak",
        #"{% for i in range(3) %}{% set x = i %}{{ x }}{% endfor %}[{{ x }}]"#,
        expected: #"012[]"#),
    JinjaCase(
        "set in a loop shadows per iteration",
        #"{% set x = 1 %}{% for i in range(2) %}{{ x }}{% set x = x + 10 %}{{ x }} {% endfor %}{{ x }}"#,
        expected: "111 111 1"),
    JinjaCase(
        "set in an if changes the outer scope",
        #"{% if true %}{% set y = 'set in if' %}{% endif %}{{ y }}"#,
        expected: "set in if"),
    JinjaCase(
        "namespace carries state out of loops",
        #"{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"#,
        expected: "3"),
    JinjaCase(
        "namespace attributes",
        #"{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}[{{ ns.b }}]{{ ns.b is defined }}"#,
        expected: #"1[]False"#),
    JinjaCase(
        "namespace from a dict",
        #"{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}"#,
        expected: "121"),
    JinjaCase(
        "tuple assignment",
        #"{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = 1, 2 %}{{ t | length }}"#,
        expected: #"12|2"#),
    JinjaCase(
        "block set",
        #"{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]"#,
        expected: #"[inner 2]"#),
    JinjaCase(
        "with",
        #"{% with a = 1, b = 2 %}{{ a }}{{ b }}{% endwith %}[{{ a }}]"#,
        expected: #"12[]"#),
    JinjaCase(
        "macro defaults and keywords",
        #"{% macro m(a, b='B', c=none) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|{{ m(1, c=3) }}|{{ m() }}"#,
        expected: #"1-B-None|1-2-None|1-B-3|-B-None"#),
    JinjaCase(
        "macros do not see the caller's locals",
        #"{% macro m() %}{{ x }}{% endmacro %}{% set x = 'top' %}{% for x in ['loop'] %}{{ m() }}{% endfor %}"#,
        expected: "top"),
    JinjaCase(
        "recursive macro",
        #"{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}"#,
        expected: "120"),
    JinjaCase(
        "macro whitespace",
        "{% macro m(x) %}\n  {{ x }}\n{% endmacro %}\n{{ m('a') }}|{{ m('b') | trim }}",
        expected: "  a\n|b"),
    JinjaCase(
        "macros can change a namespace",
        #"{% macro m(ns) %}{% set ns.v = 'changed' %}{% endmacro %}{% set ns = namespace(v='orig') %}{{ m(ns) }}{{ ns.v }}"#,
        expected: "changed"),
    JinjaCase(
        "elif chain",
        #"{% if x %}a{% elif y %}b{% elif z %}c{% endif %}|"#,
        context: #"{"z": 1}"#,
        expected: #"c|"#),
    JinjaCase(
        "range and dict globals",
        #"{{ range(3) | list }} {{ range(5, 0, -2) | list }} {{ dict(a=1, b=2) }} {{ namespace is defined }}"#,
        expected: #"[0, 1, 2] [5, 3, 1] {'a': 1, 'b': 2} True"#),
    JinjaCase(
        "reassigning context variables",
        #"{% set messages = messages[1:] %}{{ messages | length }}{{ messages[0].role }}"#,
        context: #"{"messages": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        expected: "2user"),
    JinjaCase(
        "list content parts",
        #"{% set content = message['content'] if message['content'] is string else message['content'] | map(attribute='text') | join('') %}{{ content }}"#,
        context: #"{"message": {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}"#,
        expected: "ab"),
    JinjaCase(
        "raise_exception",
        #"{{ raise_exception('boom ' ~ 1) }}"#,
        error: .raised),
    JinjaCase(
        "too many unpacking targets",
        #"{% for a, b in [[1, 2, 3]] %}{% endfor %}"#,
        error: .value),
    JinjaCase(
        "iterating an int",
        #"{% for x in 3 %}{% endfor %}"#,
        error: .type),
    JinjaCase(
        "iterating none",
        #"{% for x in none %}{% endfor %}"#,
        error: .type),
    JinjaCase(
        "setting an attribute of a non-namespace",
        #"{% set x = 5 %}{% set x.a = 1 %}"#,
        error: .type),
    JinjaCase(
        "too many macro arguments",
        #"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"#,
        error: .type),
    JinjaCase(
        "unknown macro keyword",
        #"{% macro m(a) %}{% endmacro %}{{ m(z=2) }}"#,
        error: .type),
]

@Test(arguments: jinjaStatementsCases)
func jinjaStatements(_ example: JinjaCase) throws {
    try example.check()
}
