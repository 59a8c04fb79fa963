"""The two chat wire formats, checked with the official OpenAI and Anthropic SDKs (and raw
HTTP where the SDKs hide the framing): the gateway's tests trust the mock to speak them exactly."""

from __future__ import annotations

import json
from typing import Any

from mock_provider.tests.helpers import ANTHROPIC_TOOLS, MSGS, OPENAI_TOOLS, Mock, sse_events


def test_openai_non_stream(mock: Mock) -> None:
    r = mock.openai().chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "Hello from mock gpt-4o-mini! You said: hi there"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (2, 8, 10)
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_openai_list_content_and_last_user_message(mock: Mock) -> None:
    msgs = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "text", "text": "c"}]},
    ]
    r = mock.openai().chat.completions.create(model="m", messages=msgs)
    assert r.choices[0].message.content == "Hello from mock m! You said: a b c"
    assert r.usage is not None and r.usage.prompt_tokens == 7


def test_openai_stream_text(mock: Mock) -> None:
    chunks = list(mock.openai().chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    words = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert words == ["Hello", " from", " mock", " gpt-4o!", " You", " said:", " hi", " there"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_openai_stream_include_usage(mock: Mock) -> None:
    chunks = list(mock.openai().chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}))
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, 8)


def test_openai_stream_wire_format(mock: Mock) -> None:
    resp, body = mock.raw("/v1/chat/completions",
                          {"model": "gpt-4o", "messages": MSGS, "stream": True})
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    events = sse_events(body)
    assert events[-1] == (None, "[DONE]")
    assert body.endswith(b"data: [DONE]\n\n")
    assert len(events) == 1 + 8 + 1 + 1


def test_openai_max_tokens_length(mock: Mock) -> None:
    client = mock.openai()
    r = client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=3)
    assert r.choices[0].message.content == "Hello from mock"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=3, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from mock"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_openai_tools_non_stream(mock: Mock) -> None:
    r = mock.openai().chat.completions.create(model="gpt-tools", messages=MSGS)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls is not None
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]
    assert len({c.id for c in msg.tool_calls}) == 2


def test_openai_tools_stream_reassembled(mock: Mock) -> None:
    chunks = list(mock.openai().chat.completions.create(
        model="gpt-delay-1-tools", messages=MSGS, tools=OPENAI_TOOLS, stream=True))
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for tc in c.choices[0].delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": None, "name": None, "args": [], "n": 0})
            if tc.id:
                assert call["id"] is None and tc.function and tc.function.name
                call["id"], call["name"] = tc.id, tc.function.name
            elif tc.function and tc.function.arguments:
                call["args"].append(tc.function.arguments)
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "lookup" and calls[1]["name"] == "clock"
    assert all(len(c["args"]) >= 3 for c in calls.values())
    assert json.loads("".join(calls[0]["args"])) == {"city": "Paris"}
    assert json.loads("".join(calls[1]["args"])) == {"tz": "UTC"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_models_list(mock: Mock) -> None:
    ids = [m.id for m in mock.openai().models.list()]
    assert "gpt-4o-mini" in ids and len(ids) >= 3



def test_anthropic_non_stream(mock: Mock) -> None:
    r = mock.anthropic().messages.create(
        model="claude-x", max_tokens=100, system="be brief", messages=MSGS)
    assert r.type == "message" and r.role == "assistant" and r.model == "claude-x"
    assert r.content[0].type == "text"
    assert r.content[0].text == "Hello from mock claude-x! You said: hi there"
    assert r.stop_reason == "end_turn"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (4, 8)
    assert r.usage.cache_read_input_tokens == 0 and r.usage.cache_creation_input_tokens == 0


def test_anthropic_stream_text(mock: Mock) -> None:
    with mock.anthropic().messages.stream(model="claude-x", max_tokens=100, messages=MSGS) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from mock claude-x! You said: hi there"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8 and final.usage.input_tokens == 2


def test_anthropic_stream_wire_format(mock: Mock) -> None:
    resp, body = mock.raw("/v1/messages", {"model": "c", "messages": MSGS, "stream": True,
                                           "max_tokens": 100})
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    events = sse_events(body)
    for name, data in events:
        assert json.loads(data)["type"] == name
    names = [n for n, _ in events]
    assert names == (["message_start", "content_block_start", "ping"]
                     + ["content_block_delta"] * 8
                     + ["content_block_stop", "message_delta", "message_stop"])
    delta = json.loads(events[-2][1])
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] == 8


def test_anthropic_max_tokens(mock: Mock) -> None:
    client = mock.anthropic()
    r = client.messages.create(model="c", max_tokens=2, messages=MSGS)
    assert r.content[0].type == "text" and r.content[0].text == "Hello from"
    assert r.stop_reason == "max_tokens"
    with client.messages.stream(model="c", max_tokens=2, messages=MSGS) as s:
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens"


def test_anthropic_tools(mock: Mock) -> None:
    client = mock.anthropic()
    r = client.messages.create(model="c-tools", max_tokens=100, messages=MSGS)
    assert r.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in r.content] == [
        ("tool_use", "get_weather", {"city": "Paris"}), ("tool_use", "get_time", {"tz": "UTC"})]
    fragments: dict[int, int] = {}
    with client.messages.stream(model="c-tools", max_tokens=100, messages=MSGS,
                                tools=ANTHROPIC_TOOLS) as s:  # type: ignore[arg-type]
        for ev in s:
            if ev.type == "content_block_delta" and ev.delta.type == "input_json_delta":
                fragments[ev.index] = fragments.get(ev.index, 0) + bool(ev.delta.partial_json)
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    blocks = [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in final.content]
    assert blocks == [("tool_use", "lookup", {"city": "Paris"}), ("tool_use", "clock", {"tz": "UTC"})]
    assert all(n >= 3 for n in fragments.values()) and len(fragments) == 2


def test_anthropic_thinking(mock: Mock) -> None:
    with mock.anthropic().messages.stream(model="c-thinking", max_tokens=100, messages=MSGS) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].type == "thinking" and final.content[0].thinking
    assert final.content[0].signature


def test_prompt_cache_reports_the_prefix_seen_before(mock: Mock) -> None:
    """``cache``: each turn of a conversation finds the previous turn's prompt cached, per model."""
    turn1 = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "one two three"}]
    client = mock.openai()
    first = client.chat.completions.create(model="m-cache-wire", messages=turn1)
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    turn2 = [*turn1, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "four"}]
    second = client.chat.completions.create(model="m-cache-wire", messages=turn2)
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert (second.usage.prompt_tokens, second.usage.prompt_tokens_details.cached_tokens) == (7, 5)
    other = client.chat.completions.create(model="m-cache-other", messages=turn2)
    assert other.usage is not None and other.usage.prompt_tokens_details is not None
    assert other.usage.prompt_tokens_details.cached_tokens == 0  # another model has its own cache
    claude = mock.anthropic().messages.create(
        model="c-cache-wire", max_tokens=50, system="be nice", messages=turn1[1:])
    again = mock.anthropic().messages.create(
        model="c-cache-wire", max_tokens=50, system="be nice", messages=turn2[1:])
    assert claude.usage.cache_read_input_tokens == 0
    assert (again.usage.input_tokens, again.usage.cache_read_input_tokens) == (2, 5)
