import LoomModel
import Testing

// Expected outputs were produced by jinja2 3.1.6 configured as transformers
// configures it (trim_blocks, lstrip_blocks, loopcontrols, its tojson).

/// `is` tests and the Python str/dict methods templates call.
private let jinjaTestsAndMethodsCases: [JinjaCase] = [
    JinjaCase(
        "number tests",
        #"{{ 1 is odd }} {{ 2 is even }} {{ 6 is divisibleby 3 }} {{ 6 is divisibleby(4) }} {{ 1 is number }} {{ 1.0 is float }} {{ 1 is integer }} {{ true is integer }} {{ true is boolean }} {{ 1 is boolean }}"#,
        expected: "True True True False True True True False True False"),
    JinjaCase(
        "type tests",
        #"{{ x is true }} {{ 1 is true }} {{ x is false }} {{ none is none }} {{ 'a' is string }} {{ [1] is sequence }} {{ 'a' is sequence }} {{ {} is sequence }} {{ {} is mapping }} {{ [] is mapping }} {{ 3 is iterable }} {{ u is sequence }}"#,
        context: #"{"x": true}"#,
        expected: "True False False True True True True True True False False True"),
    JinjaCase(
        "comparison tests",
        #"{{ 'a' is lower }} {{ 'A' is upper }} {{ 'aB' is lower }} {{ 2 is equalto 2 }} {{ 2 is eq 2.0 }} {{ 2 is ne 3 }} {{ 2 is lt 3 }} {{ 2 is gt 3 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 'a' is in 'abc' }} {{ 2 is in [1] }}"#,
        expected: "True True False True True True True False True False True False"),
    JinjaCase(
        "identity and callable tests",
        #"{{ none is sameas none }} {{ true is sameas true }} {{ 1 is sameas true }} {{ 'upper' is filter }} {{ 'split' is filter }} {{ 'odd' is test }} {{ raise_exception is callable }} {{ 'a' is callable }}"#,
        expected: "True True False True False True True False"),
    JinjaCase(
        "negated tests",
        #"{{ x is not none and x is string }} {{ not x is none }} {{ 'y' if x is not defined else 'n' }}"#,
        context: #"{"x": "s"}"#,
        expected: "True True n"),
    JinjaCase(
        "strip methods",
        #"[{{ '  x  '.strip() }}] [{{ 'xyx'.strip('x') }}] [{{ '  x  '.lstrip() }}] [{{ '  x  '.rstrip() }}]"#,
        expected: #"[x] [y] [x  ] [  x]"#),
    JinjaCase(
        "case methods",
        #"{{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'hello world'.title() }} {{ "they're".title() }} {{ 'hELLO'.capitalize() }} {{ 'aBc'.swapcase() }}"#,
        expected: "ABC abc Hello World They'Re Hello AbC"),
    JinjaCase(
        "split methods",
        #"{{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ ' a b c '.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'a\nb\r\nc'.splitlines() }}"#,
        expected: #"['a', 'b', '', 'c'] ['a', 'b', 'c'] ['a', 'b c'] ['a', 'b c '] ['a,b', 'c'] ['a', 'b', 'c']"#),
    JinjaCase(
        "search methods",
        #"{{ 'hello'.startswith('he') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.endswith('lo') }} {{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'hello'.count('l') }} {{ 'hello'.replace('l', 'L', 1) }}"#,
        expected: "True True True 2 3 -1 2 heLlo"),
    JinjaCase(
        "other string methods",
        #"{{ ', '.join(['a', 'b']) }} {{ '-'.join('abc') }} {{ 'abc'.isalpha() }} {{ '12'.isdigit() }} {{ ' '.isspace() }} {{ 'prefix_x'.removeprefix('prefix_') }} {{ 'ab'.ljust(4, '*') }} {{ '-42'.zfill(5) }} {{ 'ab'.center(6, '*') }}"#,
        expected: #"a, b a-b-c True True True x ab** -0042 **ab**"#),
    JinjaCase(
        "format method",
        #"{{ '{} and {}'.format(1, 'x') }} {{ '{1}{0}'.format('a', 'b') }} {{ '{n}!'.format(n=3) }} {{ '{{}}{}'.format(none) }} {{ '{!r}'.format('q') }}"#,
        expected: #"1 and x ba 3! {}None 'q'"#),
    JinjaCase(
        "dict methods",
        #"{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys() | list }} {{ d.values() | list }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"#,
        context: #"{"d": {"a": 1, "b": [2]}}"#,
        expected: #"1 None 5 ['a', 'b'] [1, [2]] a=1;b=[2];"#),
    JinjaCase(
        "join of non-strings is a type error",
        #"{{ ', '.join([1, 2]) }}"#,
        error: .type),
    JinjaCase(
        "list mutation is refused as in the sandbox",
        #"{% set l = [] %}{{ l.append(1) }}"#,
        error: .unsupported),
]

@Test(arguments: jinjaTestsAndMethodsCases)
func jinjaTestsAndMethods(_ example: JinjaCase) throws {
    try example.check()
}
