"""Exercises `loom serve` with the official OpenAI Python client.

Run by ServeProcessTests with the server's base URL and model id; exits
non-zero with the failing assertion if any behaviour differs from OpenAI's.
"""
import json
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]

whole = client.chat.completions.create(model=model, messages=messages, max_tokens=30, temperature=0)
text = whole.choices[0].message.content
assert "Paris" in text, text
assert whole.usage.completion_tokens > 0 and whole.choices[0].finish_reason in ("stop", "length")

stream = client.chat.completions.create(
    model=model, messages=messages, max_tokens=30, temperature=0, stream=True,
    stream_options={"include_usage": True})
pieces, usage, finish = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        pieces.append(choice.delta.content or "")
        finish = choice.finish_reason or finish
assert "".join(pieces) == text, ("".join(pieces), text)
assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
assert finish == whole.choices[0].finish_reason

stopped = client.chat.completions.create(model=model, messages=messages, max_tokens=30, temperature=0, stop=["Paris"])
assert "Paris" not in stopped.choices[0].message.content and stopped.choices[0].finish_reason == "stop"

seeded = dict(model=model, messages=messages, max_tokens=12, temperature=0.9, n=2, seed=11)
a = client.chat.completions.create(**seeded)
b = client.chat.completions.create(**seeded)
assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
assert len(a.choices) == 2

lp = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
content = lp.choices[0].logprobs.content
assert len(content) == 5 and all(len(t.top_logprobs) == 2 for t in content)

legacy = client.completions.create(model=model, prompt="The capital of France is", max_tokens=5, temperature=0, logprobs=1)
assert legacy.choices[0].text.startswith(" Paris"), legacy.choices[0].text
assert len(legacy.choices[0].logprobs.tokens) == 5

json_reply = client.chat.completions.create(
    model=model, max_tokens=80, temperature=0, response_format={"type": "json_object"},
    messages=[{"role": "user", "content": "Give the capital of France as a JSON object with the key capital."}])
assert json_reply.choices[0].finish_reason == "stop", json_reply.choices[0]
assert isinstance(json.loads(json_reply.choices[0].message.content), dict), json_reply.choices[0].message.content

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError:
    pass
try:
    client.completions.create(model=model, prompt="x", max_tokens=9000)
    raise AssertionError("context overflow accepted")
except openai.BadRequestError as e:
    assert "8192" in str(e), e
assert [m.id for m in client.models.list().data] == [model]
print("openai client: all checks passed")
