#!/usr/bin/env python3
"""Regenerate the chat-template fixtures in Tests/Fixtures/chat_templates/.

Writes smollm2.json, llama3.json, qwen2.5.json, mistral.json:
  {"name", "model", "source", "template", "bos_token", "eos_token",
   "render": {...how the expected strings were produced...},
   "cases": [{"name", "messages": [{"role", "content", ...}], "add_generation_prompt",
              "context": {...}            (optional: extra template variables)
              "expected": "..."  |  "expected_error": "<raise_exception message>"}]}
and constructs.json: small hand-written Jinja snippets with contexts and the
output jinja2 gives, plus an "unsupported" list of constructs no real template
here uses (an interpreter may refuse them with a clear error).

Rendering follows Hugging Face transformers' apply_chat_template:
jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[jinja2.ext.loopcontrols]); a `tojson` filter that is
json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
sort_keys=sort_keys) (NOT jinja2's built-in, which HTML-escapes and sorts keys);
a `raise_exception(msg)` global raising TemplateError(msg); and variables
messages, add_generation_prompt, bos_token, eos_token (+ a case's "context").
transformers additionally passes tools=None and documents=None; for every case
without its own tools this script checks that doing so changes nothing.

The templates are embedded below verbatim (see TEMPLATE_SOURCES for where each
came from) and pinned by SHA-256. The SmolLM2 template is also compared with
tokenizer.chat_template of the SmolLM2-135M-Instruct GGUF when that file is found
($LOOM_MODEL, /tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf or models/).

Usage: python3 scripts/golden/chat_template_goldens.py
Requires: jinja2 (3.1.x); gguf (only for the optional SmolLM2 cross-check).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "chat_templates"

# ---------------------------------------------------------------------------------------
# Verbatim chat templates. Each raw string below is exactly the template text
# (newlines are real newlines; "\n" sequences are the two characters the Jinja
# source contains).
# ---------------------------------------------------------------------------------------

SMOLLM2_TEMPLATE = r'''{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}'''

LLAMA3_TEMPLATE = r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
'''

QWEN25_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
'''

MISTRAL_TEMPLATE = r'''{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
'''

TEMPLATES = {
    "smollm2": SMOLLM2_TEMPLATE,
    "llama3": LLAMA3_TEMPLATE,
    "qwen2.5": QWEN25_TEMPLATE,
    "mistral": MISTRAL_TEMPLATE,
}

TEMPLATE_SHA256 = {
    "smollm2": "872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788",
    "llama3": "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
    "qwen2.5": "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f",
    "mistral": "796853172235ab3aaa4810013ddfe2eab481bda3306dad4f700c00d436eed596",
}

TEMPLATE_SOURCES = {
    "smollm2": "tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf "
               "(the HuggingFaceTB/SmolLM2-135M-Instruct template)",
    "llama3": "ggml-org/llama.cpp models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja "
              "(fetched verbatim from meta-llama/Llama-3.1-8B-Instruct by scripts/get_chat_template.py; "
              "identical to models/templates/meta-llama-Llama-3.3-70B-Instruct.jinja); read from the "
              "copy vendored in the llama-cpp-python 0.3.36 sdist (PyPI)",
    "qwen2.5": "ggml-org/llama.cpp models/templates/Qwen-Qwen2.5-7B-Instruct.jinja "
               "(fetched verbatim from Qwen/Qwen2.5-7B-Instruct); read from the copy vendored in "
               "the llama-cpp-python 0.3.36 sdist (PyPI)",
    "mistral": "ggml-org/llama.cpp tests/test-chat-template.cpp, case \"mistralai/Mistral-7B-Instruct-v0.2 "
               "(mistralai 'v1' template with a system prompt)\" (C++ literal unescaped); the same text "
               "appears in several public copies of the Mistral-7B-Instruct-v0.2 / Mixtral-8x7B-Instruct-v0.1 "
               "tokenizer_config.json",
}

MODELS = {
    "smollm2": ("SmolLM2", "HuggingFaceTB/SmolLM2-135M-Instruct", "<|im_start|>", "<|im_end|>"),
    "llama3": ("Llama 3.1", "meta-llama/Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>"),
    # Qwen2.5's tokenizer_config.json has bos_token null; the template never reads it.
    "qwen2.5": ("Qwen2.5", "Qwen/Qwen2.5-7B-Instruct", "", "<|im_end|>"),
    "mistral": ("Mistral 7B Instruct v0.2", "mistralai/Mistral-7B-Instruct-v0.2", "<s>", "</s>"),
}


# ---------------------------------------------------------------------------------------
# The transformers-like environment
# ---------------------------------------------------------------------------------------

class TemplateRaised(Exception):
    pass


def hf_tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
              sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = hf_tojson
    env.globals["raise_exception"] = raise_exception
    return env


ENV = make_env()


def render(template: str, variables: dict) -> tuple[str | None, str | None]:
    """(output, None) or (None, error message raised by the template)."""
    tpl = ENV.from_string(template)
    try:
        return tpl.render(**variables), None
    except jinja2.exceptions.TemplateError as e:
        if type(e) is not jinja2.exceptions.TemplateError:
            raise  # a real error (undefined, syntax...), not raise_exception
        return None, str(e.message)


# ---------------------------------------------------------------------------------------
# Conversations
# ---------------------------------------------------------------------------------------

def u(c: str) -> dict:
    return {"role": "user", "content": c}


def a(c: str) -> dict:
    return {"role": "assistant", "content": c}


def s(c: str) -> dict:
    return {"role": "system", "content": c}


TRICKY = ("Line one\nline two with \"double\" and 'single' quotes\n"
          "\tTabbed; unicode: caf\u00e9 \u65e5\u672c\u8a9e \U0001F999 \u2014 \\n stays literal")
PADDED = "   padded with spaces and a newline   \n"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
            "required": ["city"],
        },
    },
}


def common_cases() -> list[dict]:
    return [
        {"name": "single_user", "messages": [u("Hello!")], "add_generation_prompt": True},
        {"name": "single_user_no_generation_prompt", "messages": [u("Hello!")],
         "add_generation_prompt": False},
        {"name": "system_user", "messages": [s("You are a terse assistant."), u("What is 2+2?")],
         "add_generation_prompt": True},
        {"name": "multi_turn", "messages": [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")],
         "add_generation_prompt": True},
        {"name": "multi_turn_ends_with_assistant",
         "messages": [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."),
                      a("Why did the llama cross the road?")],
         "add_generation_prompt": False},
        {"name": "system_multi_turn",
         "messages": [s("Be kind."), u("First question"), a("First answer"), u("Second question")],
         "add_generation_prompt": True},
        {"name": "tricky_content",
         "messages": [s("System with\nnewline and \"quotes\"."), u(TRICKY), a(PADDED), u(PADDED)],
         "add_generation_prompt": True},
    ]


def template_specific_cases(key: str) -> list[dict]:
    if key == "smollm2":
        return [
            {"name": "system_not_first",
             "messages": [u("Hi"), s("Late system message"), u("Again")],
             "add_generation_prompt": True},
        ]
    if key == "llama3":
        return [
            {"name": "custom_date_string", "messages": [u("What day is it?")],
             "add_generation_prompt": True, "context": {"date_string": "01 Jan 2025"}},
            {"name": "error_two_tool_calls",
             "messages": [u("Weather in Paris and Rome?"),
                          {"role": "assistant", "content": "",
                           "tool_calls": [
                               {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                               {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
                           ]}],
             "add_generation_prompt": False},
            {"name": "tools_in_user_message",
             "messages": [s("You can call tools."), u("Weather in Paris?")],
             "add_generation_prompt": True, "context": {"tools": [WEATHER_TOOL]}},
            {"name": "tool_call_and_result",
             "messages": [u("Weather in Paris?"),
                          {"role": "assistant", "content": "",
                           "tool_calls": [{"type": "function",
                                           "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                          {"role": "tool", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"}],
             "add_generation_prompt": True},
            {"name": "error_tools_without_user_message",
             "messages": [s("Only a system message")],
             "add_generation_prompt": True, "context": {"tools": [WEATHER_TOOL]}},
        ]
    if key == "qwen2.5":
        return [
            {"name": "tools_system_prompt",
             "messages": [u("Weather in Paris?")],
             "add_generation_prompt": True, "context": {"tools": [WEATHER_TOOL]}},
            {"name": "tool_call_and_results",
             "messages": [u("Weather in Paris and Rome?"),
                          {"role": "assistant", "content": "",
                           "tool_calls": [
                               {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                               {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
                           ]},
                          {"role": "tool", "content": "{\"temperature\": 21}"},
                          {"role": "tool", "content": "{\"temperature\": 25}"}],
             "add_generation_prompt": True},
        ]
    if key == "mistral":
        return [
            {"name": "error_roles_not_alternating",
             "messages": [u("First"), u("Second")], "add_generation_prompt": True},
            {"name": "error_starts_with_assistant",
             "messages": [s("sys"), a("I speak first")], "add_generation_prompt": False},
            {"name": "error_unsupported_role",
             "messages": [u("What is 6*7?"), {"role": "tool", "content": "42"}],
             "add_generation_prompt": False},
        ]
    return []


def build_template_fixture(key: str, template: str) -> dict:
    name, model, bos, eos = MODELS[key]
    cases_out = []
    for case in common_cases() + template_specific_cases(key):
        variables = {"messages": case["messages"], "add_generation_prompt": case["add_generation_prompt"],
                     "bos_token": bos, "eos_token": eos}
        ctx = case.get("context", {})
        variables.update(ctx)
        out, err = render(template, variables)
        if "tools" not in ctx:
            # transformers also passes tools=None, documents=None: must not change anything
            out2, err2 = render(template, {**variables, "tools": None, "documents": None})
            assert (out2, err2) == (out, err), (key, case["name"])
        rec: dict[str, Any] = {"name": case["name"], "messages": case["messages"],
                               "add_generation_prompt": case["add_generation_prompt"]}
        if ctx:
            rec["context"] = ctx
        if err is not None:
            rec["expected_error"] = err
        else:
            rec["expected"] = out
        cases_out.append(rec)
    assert sum(1 for c in cases_out if "expected" in c) >= 5
    return {
        "name": name,
        "model": model,
        "source": TEMPLATE_SOURCES[key],
        "template": template,
        "bos_token": bos,
        "eos_token": eos,
        "render": {
            "engine": f"jinja2 {jinja2.__version__} ImmutableSandboxedEnvironment",
            "trim_blocks": True,
            "lstrip_blocks": True,
            "extensions": ["jinja2.ext.loopcontrols"],
            "tojson": "json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)",
            "raise_exception": "raises TemplateError(message); expected_error is that message",
            "variables": ["messages", "add_generation_prompt", "bos_token", "eos_token", "+ case context"],
            "undefined": "jinja2.Undefined (renders as empty string, falsy, `is defined` false)",
        },
        "cases": cases_out,
    }


# ---------------------------------------------------------------------------------------
# constructs.json
# ---------------------------------------------------------------------------------------

MSGS = [
    {"role": "system", "content": "  You are helpful.  "},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Bye"},
]

# (name, template, context, used_by)
CONSTRUCTS: list[tuple[str, str, dict, list[str]]] = [
    ("for_loop_variables",
     "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}:{{ x }}"
     "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};{% endfor %}",
     {"items": ["a", "b", "c"]}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("for_empty_and_else",
     "{% for x in items %}{{ x }}{% else %}empty{% endfor %}|{% for x in [] %}{{ x }}{% endfor %}|",
     {"items": []}, []),
    ("for_with_filter_clause",
     "{% for x in items if x != 'b' %}{{ loop.index }}{{ x }}{% endfor %}",
     {"items": ["a", "b", "c"]}, []),
    ("for_tuple_unpacking_items",
     "{% for k, v in d | items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}"
     "|{% for k, v in d.items() %}{{ k }}{% endfor %}",
     {"d": {"z": 1, "a": "two", "m": True}}, ["llama3"]),
    ("for_range",
     "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}",
     {}, []),
    ("loop_break_continue",
     "{% for x in items %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     {"items": [1, 2, 3, 4, 5]}, []),
    ("if_elif_else",
     "{% for r in roles %}{% if r == 'user' %}U{% elif r == 'assistant' %}A{% elif r == 'system' %}S"
     "{% else %}?{% endif %}{% endfor %}",
     {"roles": ["system", "user", "assistant", "tool"]}, ["llama3", "qwen2.5", "mistral"]),
    ("inline_if_expression",
     "{{ 'yes' if flag else 'no' }} {{ 'yes' if not flag else 'no' }} {{ 'x' if missing }}|",
     {"flag": True}, []),
    ("set_and_scoping",
     "{% set x = 'outer' %}{% for i in items %}{% set x = i %}{% endfor %}{{ x }}"
     "{% if true %}{% set y = 'set in if' %}{% endif %}|{{ y }}",
     {"items": ["a", "b"]}, ["llama3", "qwen2.5", "mistral"]),
    ("reassign_context_variable",
     "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] | trim %}"
     "{% set messages = messages[1:] %}{% endif %}{{ sys }}|{{ messages | length }}|{{ messages[0].role }}",
     {"messages": MSGS}, ["llama3"]),
    ("reassign_loop_variable",
     "{% for t in items %}{% if t.function is defined %}{% set t = t.function %}{% endif %}{{ t.name }};{% endfor %}",
     {"items": [{"function": {"name": "a"}}, {"name": "b"}]}, ["qwen2.5"]),
    ("typical_block_layout",
     "{%- for m in messages %}\n    {%- if m.role == 'user' %}\n        {{- '<U>' + m.content + '\\n' }}\n"
     "    {%- elif m.role == 'system' %}\n        {{- '<S>' + m.content | trim + '\\n' }}\n    {%- else %}\n"
     "        {{- m.role | upper }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
     "    {{- '<A>' }}\n{%- endif %}\n",
     {"messages": MSGS, "add_generation_prompt": True}, ["llama3", "qwen2.5", "mistral"]),
    ("namespace_assignment",
     "{% set ns = namespace(count=0, found=false, last='') %}{% for m in messages %}"
     "{% if m.role == 'user' %}{% set ns.count = ns.count + 1 %}{% set ns.found = true %}"
     "{% set ns.last = m.content %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.last }}",
     {"messages": MSGS}, []),
    ("whitespace_control",
     "a  {%- if true -%}  b  {%- endif -%}  c\n  {{- ' d ' -}}  \n e",
     {}, ["llama3", "qwen2.5", "mistral"]),
    ("trim_blocks_and_lstrip_blocks",
     "<\n{% for x in items %}\n    {% if x %}\n  [{{ x }}]\n    {% endif %}\n{% endfor %}\n>",
     {"items": ["a", "", "b"]}, ["llama3", "qwen2.5", "mistral"]),
    ("comments",
     "a{# a comment #}b\n{#- trimmed comment -#}\nc",
     {}, ["llama3"]),
    ("string_concat_and_tilde",
     "{{ 'a' + 'b' + s }}|{{ 'n=' ~ n ~ ';' ~ none ~ ';' ~ true }}",
     {"s": "c", "n": 3}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("string_literal_escapes",
     "{{ 'line1\\nline2' }}|{{ \"tab\\there\" }}|{{ 'it\\'s' }}|{{ \"say \\\"hi\\\"\" }}|{{ 'back\\\\slash' }}",
     {}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("render_values",
     "{{ true }} {{ false }} {{ none }} {{ 42 }} {{ 1.5 }} {{ [1, 'a'] }} {{ {'k': 'v'} }} [{{ undefined_name }}]",
     {}, []),
    ("comparisons",
     "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 3 >= 4 }} {{ 'a' == 'a' }} {{ 'a' != 'a' }} {{ 1 == 1.0 }}",
     {}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("bool_equality_of_comparisons",
     "{% for m in msgs %}{{ (m.role == 'user') != (loop.index0 % 2 == 0) }} {% endfor %}",
     {"msgs": [{"role": "user"}, {"role": "assistant"}, {"role": "assistant"}]}, ["mistral"]),
    ("in_and_not_in",
     "{{ 'b' in 'abc' }} {{ 'x' not in ['a', 'b'] }} {{ 'role' in m }} {{ 'tool_calls' in m }} "
     "{{ not 'tool_calls' in m }}",
     {"m": {"role": "user", "content": "hi"}}, ["llama3"]),
    ("and_or_not",
     "{{ true and false }} {{ true or false }} {{ not false and true }} {{ not (true and false) }} "
     "[{{ '' or 'fallback' }}] [{{ 'first' and 'second' }}] [{{ 0 or none }}]",
     {}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("filter_precedence",
     "{{ '<' + '  x  ' | trim + '>' }} {{ not items | length == 3 }} {{ -2 | abs }}",
     {"items": [1, 2, 3]}, ["llama3"]),
    ("filters_string",
     "[{{ '  pad  ' | trim }}] {{ 'MiXeD' | upper }} {{ 'MiXeD' | lower }} {{ 'hello world' | title }} "
     "{{ 'hello' | capitalize }} {{ 'a-b-c' | replace('-', '+') }} {{ 42 | string }}{{ 'x' | string }}",
     {}, ["llama3"]),
    ("filters_length_first_last_join",
     "{{ items | length }} {{ 'abcd' | length }} {{ d | length }} {{ items | first }} {{ items | last }} "
     "{{ items | join(', ') }} {{ items | join }}",
     {"items": ["a", "b", "c"], "d": {"k": 1, "j": 2}}, ["llama3"]),
    ("filter_default",
     "{{ missing | default('d1') }} {{ none | default('d2') }} {{ '' | default('d3') }} "
     "{{ '' | default('d4', true) }} {{ present | default('d5') }}",
     {"present": "here"}, []),
    ("filter_tojson",
     "{{ obj | tojson }}\n{{ 'quote \" and newline \\n and unicode \u00e9 \U0001F999' | tojson }}\n"
     "{{ obj | tojson(indent=4) }}\n{{ none | tojson }} {{ 3 | tojson }} {{ true | tojson }}",
     {"obj": {"name": "get_weather", "b": [1, 2.5, None, True, "<&>"], "a": {}}}, ["llama3", "qwen2.5"]),
    ("filters_select_reject",
     "{{ items | reject('equalto', 'b') | join(',') }}|{{ items | select('equalto', 'b') | list }}|"
     "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|"
     "{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}",
     {"items": ["a", "b", "c"], "messages": MSGS}, ["llama3"]),
    ("indexing_and_slicing",
     "{{ items[0] }} {{ items[-1] }} {{ items[1:] }} {{ items[:-1] }} {{ items[::-1] }} {{ 'hello'[1:3] }} "
     "{{ messages[1:] | length }} {{ messages[0]['content'] }}",
     {"items": [1, 2, 3, 4], "messages": MSGS}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("index_arithmetic",
     "{% for m in messages %}{% if not loop.first %}{{ messages[loop.index0 - 1].role }}>{% endif %}"
     "{% if not loop.last %}{{ messages[loop.index0 + 1]['role'] }}{% endif %};{% endfor %}",
     {"messages": MSGS}, ["qwen2.5"]),
    ("attribute_and_item_access",
     "{{ m['role'] }} {{ m.role }} {{ m['content'] | trim }} [{{ m.missing }}] {{ m.missing is defined }} "
     "{{ m.nested.k }} {{ m['nested']['k'] }}",
     {"m": {"role": "user", "content": " hi ", "nested": {"k": "v"}}}, ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("tests_defined_none_string",
     "{{ x is defined }} {{ y is defined }} {{ not y is defined }} {{ y is not defined }} {{ n is none }} "
     "{{ x is not none }} {{ x is string }} {{ 3 is string }} {{ 3 is number }} {{ d is mapping }} "
     "{{ x is iterable }} {{ d is iterable }} {{ 3 is iterable }} {{ items is sequence }}",
     {"x": "str", "n": None, "d": {"a": 1}, "items": [1]}, ["llama3", "qwen2.5", "mistral"]),
    ("truthiness",
     "{% for v in values %}{% if v %}T{% else %}F{% endif %}{% endfor %}|{% if missing %}T{% else %}F{% endif %}",
     {"values": ["", "a", 0, 1, [], [0], {}, {"k": 1}, None, False, True]},
     ["smollm2", "llama3", "qwen2.5", "mistral"]),
    ("string_methods",
     "[{{ '  x  '.strip() }}] [{{ 'xxhixx'.strip('x') }}] [{{ '  x'.lstrip() }}] [{{ 'x  '.rstrip() }}] "
     "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'a,b,c'.split(',') }} "
     "{{ 'a b  c'.split() }} {{ 'think</think>answer'.split('</think>')[-1] }} {{ 'Hi'.upper() }} "
     "{{ 'Hi'.lower() }} {{ 'a-b'.replace('-', '_') }} {{ 'user'.title() }}",
     {}, []),
    ("integer_arithmetic",
     "{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 * 3 + 1 }} {{ 10 - 3 }} {{ 7 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }} "
     "{{ 2 ** 10 }} {{ (1 + 2) * 3 }} {{ n + 1 }}",
     {"n": 41}, ["qwen2.5", "mistral"]),
    ("raise_exception_call",
     "before{% if fail %}{{ raise_exception('Roles must alternate!') }}{% endif %}after",
     {"fail": True}, ["llama3", "mistral"]),
    ("list_and_dict_literals",
     "{% set l = [1, 'two', [3]] %}{% set d = {'a': 1, 'b': [2]} %}{{ l | length }} {{ l[2][0] }} {{ d.b[0] }} "
     "{{ d['a'] }} {{ (l + [4]) | length }}",
     {}, []),
]

UNSUPPORTED = [
    {"construct": "raw", "template": "{% raw %}{{ not rendered }}{% endraw %}"},
    {"construct": "macro", "template": "{% macro greet(name) %}Hi {{ name }}{% endmacro %}{{ greet('x') }}"},
    {"construct": "call", "template": "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}x{% endcall %}"},
    {"construct": "include", "template": "{% include 'other.jinja' %}"},
    {"construct": "import", "template": "{% import 'macros.jinja' as m %}{{ m.f() }}"},
    {"construct": "extends", "template": "{% extends 'base.jinja' %}{% block body %}x{% endblock %}"},
    {"construct": "block", "template": "{% block body %}x{% endblock %}"},
    {"construct": "filter_block", "template": "{% filter upper %}shout{% endfilter %}"},
    {"construct": "with", "template": "{% with x = 1 %}{{ x }}{% endwith %}"},
]


def build_constructs() -> dict:
    out = []
    for name, template, ctx, used_by in CONSTRUCTS:
        res, err = render(template, ctx)
        rec: dict[str, Any] = {"name": name, "template": template, "context": ctx, "used_by": used_by}
        if err is not None:
            rec["expected_error"] = err
        else:
            rec["expected"] = res
        out.append(rec)
    return {
        "render": "same environment as the template fixtures (trim_blocks, lstrip_blocks, loopcontrols, "
                  "transformers' tojson, raise_exception)",
        "constructs": out,
        "unsupported": UNSUPPORTED,
    }


# ---------------------------------------------------------------------------------------

def smollm2_from_gguf() -> str | None:
    candidates = [os.environ.get("LOOM_MODEL", ""), "/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                  str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")]
    for c in candidates:
        if c and os.path.isfile(c):
            try:
                import gguf  # noqa: PLC0415
            except ImportError:
                return None
            r = gguf.GGUFReader(c)
            f = r.fields.get("tokenizer.chat_template")
            return f.contents() if f is not None else None
    return None


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for key, tpl in TEMPLATES.items():
        digest = hashlib.sha256(tpl.encode("utf-8")).hexdigest()
        if digest != TEMPLATE_SHA256[key]:
            raise SystemExit(f"{key}: embedded template does not match its pinned SHA-256")
    from_gguf = smollm2_from_gguf()
    if from_gguf is not None:
        assert from_gguf == TEMPLATES["smollm2"], "SmolLM2 GGUF chat template differs from the embedded copy"
        print("smollm2: embedded template matches the GGUF's tokenizer.chat_template")

    for key, tpl in TEMPLATES.items():
        fixture = build_template_fixture(key, tpl)
        with open(OUT / f"{key}.json", "w", encoding="utf-8") as f:
            json.dump(fixture, f, indent=1, ensure_ascii=False)
            f.write("\n")
        n_ok = sum(1 for c in fixture["cases"] if "expected" in c)
        n_err = len(fixture["cases"]) - n_ok
        print(f"{key}: {n_ok} rendered cases, {n_err} error cases")

    constructs = build_constructs()
    # Each unsupported snippet must at least parse or fail in jinja2 for a reason other than
    # a plain syntax slip in this file (include/import/extends fail for lack of a loader).
    for rec in constructs["unsupported"]:
        try:
            rec["jinja2_output"] = ENV.from_string(rec["template"]).render()
        except TypeError as e:  # include/import/extends: no loader configured
            assert "no loader" in str(e), e
            rec["jinja2_output"] = None
    with open(OUT / "constructs.json", "w", encoding="utf-8") as f:
        json.dump(constructs, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"constructs: {len(constructs['constructs'])} snippets, {len(constructs['unsupported'])} unsupported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
