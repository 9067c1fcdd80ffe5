import LoomModel
import Testing

// Expected outputs were produced by jinja2 3.1.6 configured as transformers
// configures it (trim_blocks, lstrip_blocks, loopcontrols, its tojson).

/// Operators, literals, printing and undefined values follow Python and
/// jinja2's default Undefined.
private let jinjaExpressionsCases: [JinjaCase] = [
    JinjaCase(
        "floats print like Python",
        #"{{ 1.0 }} {{ 1e16 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 4 / 2 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}"#,
        expected: #"1.0 1e+16 0.30000000000000004 2.5 2.0 0.5 3.0 0.5"#),
    JinjaCase(
        "integer arithmetic floors",
        #"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ (1 + 2) * 3 }}"#,
        expected: "3 -4 2 -2 1024 9"),
    JinjaCase(
        "nested values print as Python repr",
        #"{{ [1, [2, 'x\'y'], {'k': none}] }} {{ true }} {{ none }}"#,
        expected: #"[1, [2, "x'y"], {'k': None}] True None"#),
    JinjaCase(
        "quotes in repr",
        #"{{ 'it\'s' }} {{ ['it\'s', "q\""] }}"#,
        expected: #"it's ["it's", 'q"']"#),
    JinjaCase(
        "string escapes",
        #"{{ '\x41\u00e9\U0001F600\101|\t|\n' }}"#,
        expected: "Aé😀A|\t|\n"),
    JinjaCase(
        "adjacent string literals concatenate",
        #"{{ 'a' 'b' }}"#,
        expected: "ab"),
    JinjaCase(
        "number literal forms",
        #"{{ 1_000 }} {{ 1e3 }} {{ 2.5e-3 }}"#,
        expected: "1000 1000.0 0.0025"),
    JinjaCase(
        "integer attribute indexes",
        #"{{ x.0 }} {{ x[1] }}"#,
        context: #"{"x": ["a", "b"]}"#,
        expected: "a b"),
    JinjaCase(
        "unary operators",
        #"{{ -x }} {{ +x }} {{ -(3) }} {{ -2 | abs }}"#,
        context: #"{"x": 5}"#,
        expected: "-5 5 -3 2"),
    JinjaCase(
        "repetition",
        #"{{ 'abc' * 2 }} {{ 2 * 'ab' }} {{ [1] * 3 }} [{{ 'a' * 0 }}]"#,
        expected: #"abcabc abab [1, 1, 1] []"#),
    JinjaCase(
        "bool is an int",
        #"{{ 1 + true }} {{ true + true }} {{ 3 - 1.5 }} {{ 1 == true }}"#,
        expected: "2 2 1.5 True"),
    JinjaCase(
        "chained comparisons",
        #"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1 == 1 }}"#,
        expected: "True False True"),
    JinjaCase(
        "structural equality",
        #"{{ [1,2] == [1,2] }} {{ {'a':1} == {'a':1} }} {{ none == none }} {{ 1 == 1.0 }} {{ 'a' != 'b' }}"#,
        expected: "True True True True True"),
    JinjaCase(
        "ordering of strings and lists",
        #"{{ 'ab' < 'b' }} {{ [1,2] < [1,2,0] }} {{ 'B' < 'a' }}"#,
        expected: "True True True"),
    JinjaCase(
        "membership",
        #"{{ 1 in [1.0] }} {{ 'a' in {'a': 1} }} {{ 1 in {'a':1} }} {{ 'b' in 'abc' }} {{ 'x' not in ['a'] }} {{ 'a' in missing }}"#,
        expected: "True True False True True False"),
    JinjaCase(
        "and/or return operands",
        #"{{ 'x' if 0 else 'y' }} [{{ none or 0 or '' }}] [{{ 0 and 1 }}] {{ 1 and 'z' }} {{ '' or 'fallback' }}"#,
        expected: #"y [] [0] z fallback"#),
    JinjaCase(
        "not binds looser than tests and filters",
        #"{{ not none }} {{ not [] }} {{ not x is defined }} {{ not items | length == 3 }}"#,
        context: #"{"items": [1, 2]}"#,
        expected: "True True True True"),
    JinjaCase(
        "filters bind tighter than plus",
        #"{{ '<' + '  x  ' | trim + '>' }}"#,
        expected: #"<x>"#),
    JinjaCase(
        "conditional without else is undefined",
        #"[{{ 'x' if false }}]"#,
        expected: #"[]"#),
    JinjaCase(
        "undefined prints empty and is falsy",
        #"[{{ u }}] {{ u is defined }} {{ u is undefined }} {{ u | default('d') }} {{ u | length }} {{ not u }}"#,
        expected: #"[] False True d 0 True"#),
    JinjaCase(
        "undefined concatenates as empty",
        #"{{ u ~ 'x' }} {{ 'x' ~ u }} {{ 'n=' ~ 1 ~ none }}"#,
        expected: #"x x n=1None"#),
    JinjaCase(
        "undefined iterates as empty",
        #"{% for x in u %}a{% else %}empty{% endfor %}"#,
        expected: "empty"),
    JinjaCase(
        "undefined equality",
        #"{{ u == u }} {{ u == none }} {{ u != 1 }}"#,
        expected: "True False True"),
    JinjaCase(
        "missing keys are undefined",
        #"[{{ d.missing }}]{{ d.missing is defined }}[{{ d['missing'] }}]{{ d.missing | default('z') }}"#,
        context: #"{"d": {"a": 1}}"#,
        expected: #"[]False[]z"#),
    JinjaCase(
        "attributes of none and numbers are undefined",
        #"[{{ none.x }}][{{ 'abc'.x }}]"#,
        expected: #"[][]"#),
    JinjaCase(
        "out of range indexes are undefined",
        #"[{{ [1][5] }}][{{ 'ab'[5] }}]{{ [1,2][-1] }}{{ 'abc'[-1] }}"#,
        expected: #"[][]2c"#),
    JinjaCase(
        "slices",
        #"{{ items[1:] }} {{ items[:-1] }} {{ items[::-1] }} {{ items[::2] }} {{ 'hello'[1:3] }} {{ items[5:] }} {{ items[-9:1] }}"#,
        context: #"{"items": [1, 2, 3, 4]}"#,
        expected: #"[2, 3, 4] [1, 2, 3] [4, 3, 2, 1] [1, 3] el [] [1]"#),
    JinjaCase(
        "item access prefers keys, attribute access prefers methods",
        #"{{ d['items'] }} {{ d.get('items') }} {{ d.items() | list | length }}"#,
        context: #"{"d": {"items": 1}}"#,
        expected: "1 1 1"),
    JinjaCase(
        "integer dict keys",
        #"{% set d = {0: 'a', 512: 'b', 'k': 1} %}{{ d[0] }}{{ d[512] }}{{ d[0.0] }}{{ d[false] }}[{{ d['0'] }}] {{ d }} {{ d | tojson }} {{ 512 in d }}"#,
        expected: #"abaa[] {0: 'a', 512: 'b', 'k': 1} {"0": "a", "512": "b", "k": 1} True"#),
    JinjaCase(
        "list and dict literals",
        #"{% set l = [1, 'two', [3]] %}{% set d = {'a': 1, 'b': [2],} %}{{ l | length }} {{ l[2][0] }} {{ d.b[0] }} {{ d['a'] }} {{ (l + [4]) | length }}"#,
        expected: "3 3 2 1 4"),
    JinjaCase(
        "undefined attribute is an error",
        #"{{ u.x }}"#,
        error: .undefined),
    JinjaCase(
        "undefined subscript is an error",
        #"{{ u['x'] }}"#,
        error: .undefined),
    JinjaCase(
        "undefined arithmetic is an error",
        #"{{ u + 1 }}"#,
        error: .undefined),
    JinjaCase(
        "undefined ordering is an error",
        #"{{ u < 1 }}"#,
        error: .undefined),
    JinjaCase(
        "calling undefined is an error",
        #"{{ u() }}"#,
        error: .undefined),
    JinjaCase(
        "attribute of a missing key is an error",
        #"{{ d.missing.x }}"#,
        context: #"{"d": {}}"#,
        error: .undefined),
    JinjaCase(
        "testing an attribute of undefined is an error",
        #"{{ u.y is defined }}"#,
        error: .undefined),
    JinjaCase(
        "string plus int is a type error",
        #"{{ 'a' + 1 }}"#,
        error: .type),
    JinjaCase(
        "none ordering is a type error",
        #"{{ none < 1 }}"#,
        error: .type),
    JinjaCase(
        "int in string is a type error",
        #"{{ 1 in 'abc' }}"#,
        error: .type),
    JinjaCase(
        "division by zero",
        #"{{ 1 / 0 }}"#,
        error: .value),
    JinjaCase(
        "floor division by zero",
        #"{{ 5 // 0 }}"#,
        error: .value),
    JinjaCase(
        "list keys are unhashable",
        #"{{ {[1]: 2} }}"#,
        error: .type),
]

@Test(arguments: jinjaExpressionsCases)
func jinjaExpressions(_ example: JinjaCase) throws {
    try example.check()
}
