import LoomModel
import Testing

// Expected outputs were produced by jinja2 3.1.6 configured as transformers
// configures it (trim_blocks, lstrip_blocks, loopcontrols, its tojson).

/// Whitespace in the prompt comes from the lexer; these pin trim_blocks,
/// lstrip_blocks, `-`/`+` markers, comments and raw blocks to jinja2.
private let jinjaWhitespaceControlCases: [JinjaCase] = [
    JinjaCase(
        "trim_blocks eats the newline after a block tag",
        "{% if true %}\nx\n{% endif %}\ny",
        expected: "x\ny"),
    JinjaCase(
        "lstrip_blocks strips indentation before a block tag",
        "a\n  {% if true %}\n  x\n  {% endif %}\nb",
        expected: "a\n  x\nb"),
    JinjaCase(
        "one trailing newline of the template is dropped",
        "a\n  {% if true %}\n  x\n  {% endif %}\nb\n\n",
        expected: "a\n  x\nb\n"),
    JinjaCase(
        "text after a tag on the same line is kept",
        #"{% if true %}  x{% endif %}"#,
        expected: "  x"),
    JinjaCase(
        "indentation at template start is stripped",
        #"  {% if true %}x{% endif %}  "#,
        expected: "x  "),
    JinjaCase(
        "lstrip only applies when the tag starts the line",
        #"x  {% if true %}y{% endif %}"#,
        expected: "x  y"),
    JinjaCase(
        "plus sign disables lstrip",
        "x\n\t {%+ if true %}y{% endif %}",
        expected: "x\n\t y"),
    JinjaCase(
        "plus sign disables trim_blocks",
        "x\n {% if true +%}\ny{% endif %}",
        expected: "x\n\ny"),
    JinjaCase(
        "expression tags are not trimmed",
        "{{ 'a' }}\n{{ 'b' }}\n",
        expected: "a\nb"),
    JinjaCase(
        "comments are trimmed like blocks",
        "{# c #}\n  {# d #}\nz",
        expected: "z"),
    JinjaCase(
        "dash on comments strips both sides",
        #"a {#- c -#} b"#,
        expected: "ab"),
    JinjaCase(
        "dash strips all whitespace including newlines",
        "a  {%- if true -%}  b  {%- endif -%}  c\n  {{- ' d ' -}}  \n e",
        expected: "abc d e"),
    JinjaCase(
        "dash in a loop",
        "{% for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}",
        expected: "12"),
    JinjaCase(
        "loop body lines keep their newline",
        "{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}",
        expected: "  1\n  2\n"),
    JinjaCase(
        "expression dash strips preceding indentation",
        #"   {{- 'x' }}"#,
        expected: "x"),
    JinjaCase(
        "expression dash strips following blank lines",
        "{{ 'x' -}}   \n\n  y",
        expected: "xy"),
    JinjaCase(
        "windows newlines are normalized",
        "a\r\nb\r\n{% if true %}\r\nc{% endif %}",
        expected: "a\nb\nc"),
    JinjaCase(
        "raw block copies text",
        "{% raw %}\n{{ x }}{% endraw %}\n|",
        expected: "\n{{ x }}|"),
    JinjaCase(
        "raw block with dashes",
        #"{%- raw -%}  {{ x }}  {%- endraw -%}  |"#,
        expected: #"{{ x }}|"#),
    JinjaCase(
        "raw block lstrip",
        #"  {% raw %}{{ x }}  {% endraw %}|"#,
        expected: #"{{ x }}  |"#),
    JinjaCase(
        "dict literal ending in double brace",
        #"{{ {'a': {'b': 1}}}}"#,
        expected: #"{'a': {'b': 1}}"#),
    JinjaCase(
        "mixed layout",
        "line1\n{{ undefined_var }}\n  {%- if true %} y {% endif -%}\n  z",
        expected: "line1\n y z"),
]

@Test(arguments: jinjaWhitespaceControlCases)
func jinjaWhitespaceControl(_ example: JinjaCase) throws {
    try example.check()
}
