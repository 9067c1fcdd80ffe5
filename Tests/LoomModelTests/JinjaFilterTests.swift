import LoomModel
import Testing

// Expected outputs were produced by jinja2 3.1.6 configured as transformers
// configures it (trim_blocks, lstrip_blocks, loopcontrols, its tojson).

/// Builtin filters, with transformers' `tojson` (json.dumps, unsorted,
/// no HTML escaping).
private let jinjaFiltersCases: [JinjaCase] = [
    JinjaCase(
        "string filters",
        #"[{{ '  a b  ' | trim }}] {{ 'xxaxx' | trim('x') }} {{ 'hello WORLD-foo(bar' | title }} {{ "they're" | title }} {{ 'hELLO' | capitalize }} {{ 'MiXeD' | upper }} {{ 'MiXeD' | lower }}"#,
        expected: #"[a b] a Hello World-Foo(Bar They're Hello MIXED mixed"#),
    JinjaCase(
        "replace",
        #"{{ 'a-b-a' | replace('a', 'c') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'abc' | replace('', '-') }}"#,
        expected: "c-b-c bba -a-b-c-"),
    JinjaCase(
        "sort",
        #"{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(case_sensitive=true) }} {{ [1, 3, 2] | sort(reverse=true) }}"#,
        expected: #"[1, 2, 3] ['A', 'b', 'c'] ['A', 'b', 'c'] [3, 2, 1]"#),
    JinjaCase(
        "sort by attribute",
        #"{{ m | sort(attribute='role') | map(attribute='role') | join(',') }}"#,
        context: #"{"m": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        expected: "assistant,system,user"),
    JinjaCase(
        "unique min max",
        #"{{ [1, 2, 2, 'a', 'A'] | unique | list }} {{ ['a', 'B', 'b'] | max }} {{ ['a', 'B', 'b'] | min }} [{{ [] | max }}]"#,
        expected: #"[1, 2, 'a'] B a []"#),
    JinjaCase(
        "sum",
        #"{{ [1, 2.5] | sum }} {{ m | sum(attribute='n') }} {{ [[1],[2]] | sum(start=[]) }}"#,
        context: #"{"m": [{"n": 1}, {"n": 2}]}"#,
        expected: #"3.5 3 [1, 2]"#),
    JinjaCase(
        "dictsort",
        #"{% for k, v in {'b': 2, 'a': 1, 'C': 0} | dictsort %}{{ k }}{{ v }}{% endfor %} {% for k, v in {'b': 2, 'a': 1} | dictsort(by='value', reverse=true) %}{{ k }}{% endfor %}"#,
        expected: "a1b2C0 ba"),
    JinjaCase(
        "map attribute and default",
        #"{{ m | map(attribute='role') | list }} {{ m | map(attribute='x', default='none') | list }}"#,
        context: #"{"m": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        expected: #"['system', 'user', 'assistant'] ['none', 'none', 'none']"#),
    JinjaCase(
        "map filter name",
        #"{{ ['a', 'b'] | map('upper') | join }} {{ [' a ', 'b '] | map('trim') | list }} {{ ['a','b'] | map('replace', 'a', 'z') | list }}"#,
        expected: #"AB ['a', 'b'] ['z', 'b']"#),
    JinjaCase(
        "select and reject",
        #"{{ [0, 1, '', 'x', none] | select | list }} {{ [0, 1, '', 'x'] | reject | list }} {{ [1,2,3,4] | select('odd') | list }} {{ [1,2,3] | reject('equalto', 2) | list }}"#,
        expected: #"[1, 'x'] [0, ''] [1, 3] [1, 3]"#),
    JinjaCase(
        "selectattr and rejectattr",
        #"{{ m | selectattr('role', 'equalto', 'user') | map(attribute='content') | join }} {{ m | rejectattr('role', 'eq', 'user') | list | length }} {{ m | selectattr('role', 'in', ['user', 'system']) | list | length }} {{ m | selectattr('x', 'defined') | list | length }} {{ m | selectattr('content') | list | length }}"#,
        context: #"{"m": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        expected: "Hi 2 2 0 3"),
    JinjaCase(
        "map and select on none are empty",
        #"{{ none | map(attribute='a') | list }} {{ none | selectattr('a') | list }}"#,
        expected: #"[] []"#),
    JinjaCase(
        "tojson keeps key order and unicode",
        #"{{ d | tojson }} {{ 'é\u2028\x7f\x01"\\' | tojson }}"#,
        context: #"{"d": {"z": 1, "a": [true, null, 1.5]}}"#,
        expected: "{\"z\": 1, \"a\": [true, null, 1.5]} \"é\u{2028}\u{7f}\\u0001\\\"\\\\\""),
    JinjaCase(
        "tojson options",
        #"{{ 'é' | tojson(ensure_ascii=true) }} {{ '🦙' | tojson(true) }} {{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }} {{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}"#,
        expected: #""\u00e9" "\ud83e\udd99" {"a": 2, "b": 1} {"a":[1,2]}"#),
    JinjaCase(
        "tojson indent",
        #"{{ d | tojson(indent=4) }}|{{ [] | tojson(indent=2) }}|{{ [1] | tojson(indent=0) }}|{{ [1, {}] | tojson(indent='\t') }}"#,
        context: #"{"d": {"a": [1, {"b": null}], "c": {}}}"#,
        expected: "{\n    \"a\": [\n        1,\n        {\n            \"b\": null\n        }\n    ],\n    \"c\": {}\n}|[]|[\n1\n]|[\n\t1,\n\t{}\n]"),
    JinjaCase(
        "list first last reverse",
        #"{{ 'abc' | list }} {{ {'a': 1} | list }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }} {{ 'abc' | first }} {{ 'abc' | last }} {{ {'a': 1, 'b': 2} | first }}"#,
        expected: #"['a', 'b', 'c'] ['a'] cba [2, 1] a c a"#),
    JinjaCase(
        "length and count",
        #"{{ 'héllo' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }} {{ 'a b-c' | wordcount }}"#,
        expected: "5 2 1 3"),
    JinjaCase(
        "string",
        #"{{ 42 | string }} {{ none | string }} {{ [1, 'a'] | string }} {{ true | string }}"#,
        expected: #"42 None [1, 'a'] True"#),
    JinjaCase(
        "int",
        #"{{ '42' | int }} {{ ' 42 ' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 4.7 | int }} {{ -4.7 | int }} {{ true | int }} {{ '1_000' | int }} {{ 'ff' | int(base=16) }} {{ none | int }}"#,
        expected: "42 42 4 0 7 4 -4 1 1000 255 0"),
    JinjaCase(
        "float and round",
        #"{{ '3.5' | float }} {{ 3 | float }} {{ 'x' | float }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.567 | round(2) }} {{ 2.1 | round(method='ceil') }} {{ 2.9 | round(0, 'floor') }} {{ 7 | round }}"#,
        expected: "3.5 3.0 0.0 2.0 4.0 2.57 3.0 2.0 7"),
    JinjaCase(
        "center and indent",
        #"[{{ 'x' | center(5) }}][{{ 'xy' | center(5) }}]{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, first=true) }}|{{ 'a\n\nb' | indent(2, blank=true) }}|{{ 'a\nb' | indent('> ') }}"#,
        expected: "[  x  ][  xy ]a\n    b\n\n    c|  a\n  b|a\n  \n  b|a\n> b"),
    JinjaCase(
        "escape and safe",
        #"{{ '<a href="x">&\'' | e }} {{ '<b>' | safe }}"#,
        expected: #"&lt;a href=&#34;x&#34;&gt;&amp;&#39; <b>"#),
    JinjaCase(
        "default",
        #"{{ none | default('x') }} {{ false | default('x') }} {{ false | d('x', true) }} [{{ u | d }}] {{ [] | default('e', boolean=true) }}"#,
        expected: #"None False x [] e"#),
    JinjaCase(
        "items",
        #"{% for k, v in m | items %}{{ k }}{{ v }}{% endfor %} {{ u | items | list }} [{{ m | attr('a') }}]"#,
        context: #"{"m": {"a": 1, "b": 2}}"#,
        expected: #"a1b2 [] []"#),
    JinjaCase(
        "join",
        #"{{ [1,2,3] | join }} {{ [1, none, 'a'] | join('-') }} {{ m | join(', ', attribute='role') }} {{ 'abc' | join('-') }}"#,
        context: #"{"m": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        expected: "123 1-None-a system, user, assistant a-b-c"),
    JinjaCase(
        "filters on undefined",
        #"[{{ u | upper }}|{{ u | trim }}|{{ u | list }}|{{ u | join(',') }}|{{ u | first }}|{{ u | string }}]"#,
        expected: #"[||[]|||]"#),
    JinjaCase(
        "filter block",
        #"{% filter upper %}abc{{ x }}{% endfilter %}|{% filter replace('a', 'b') %}aaa{% endfilter %}"#,
        context: #"{"x": "y"}"#,
        expected: #"ABCY|bbb"#),
    JinjaCase(
        "tojson of undefined is an error",
        #"{{ u | tojson }}"#,
        error: .type),
    JinjaCase(
        "int of undefined is an error",
        #"{{ u | int }}"#,
        error: .undefined),
    JinjaCase(
        "wrong filter arguments",
        #"{{ 'a' | upper(1) }}"#,
        error: .type),
]

@Test(arguments: jinjaFiltersCases)
func jinjaFilters(_ example: JinjaCase) throws {
    try example.check()
}
