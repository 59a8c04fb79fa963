"""Per-model fault scripts (``/_mock/faults``): fail the next N requests, delay the first byte,
drop the connection, recover; and the per-model request counts a breaker test asserts on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from mock_provider.tests.helpers import MSGS, Mock


@pytest.fixture(autouse=True)
def no_scripts(mock: Mock) -> Iterator[None]:
    mock.clear_faults()
    yield
    mock.clear_faults()


def last_entry(mock: Mock) -> dict:
    return mock.requests()[-1]


def test_fail_next_n_then_recover_openai(mock: Mock) -> None:
    client = mock.openai()
    view = mock.script_fault("gpt-x", fail=2, status=503, retry_after="2")
    assert view["scripts"]["gpt-x"] == {"kind": "fail", "remaining": 2, "status": 503, "retry_after": "2"}
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as ei:
            client.chat.completions.create(model="gpt-x", messages=MSGS)
        resp = ei.value.response
        assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
        assert resp.json()["error"]["message"] == "mock fault script: HTTP 503"
        assert last_entry(mock)["script"] == {"fail": 503, "retry_after": "2"}
    reply = client.chat.completions.create(model="gpt-x", messages=MSGS)
    assert reply.choices[0].message.content.startswith("Hello from mock gpt-x")
    assert "script" not in last_entry(mock)
    assert mock.faults() == {"scripts": {}, "seen": {"gpt-x": 3}}
    client.chat.completions.create(model="gpt-other", messages=MSGS)  # other models unaffected
    assert (mock.seen("gpt-x"), mock.seen("gpt-other"), mock.seen("never")) == (3, 1, 0)


def test_fail_in_anthropic_shape_without_retry_after(mock: Mock) -> None:
    client = mock.anthropic()
    mock.script_fault("claude-x", fail=1, status=429)
    with pytest.raises(anthropic.RateLimitError) as ei:
        client.messages.create(model="claude-x", max_tokens=10, messages=MSGS, stream=True)
    resp = ei.value.response
    assert "retry-after" not in resp.headers  # only when the script gives one
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    with client.messages.stream(model="claude-x", max_tokens=10, messages=MSGS) as stream:
        assert stream.get_final_text().startswith("Hello from mock claude-x")


def test_fail_until_recovered_with_http_date(mock: Mock) -> None:
    client = mock.anthropic()
    date = "Wed, 21 Oct 2099 07:28:00 GMT"
    mock.script_fault("claude-down", fail=True, status=529, retry_after=date)
    for _ in range(3):
        with pytest.raises(anthropic.OverloadedError) as ei:
            client.messages.create(model="claude-down", max_tokens=10, messages=MSGS)
        assert ei.value.response.headers["retry-after"] == date
    assert mock.faults()["scripts"]["claude-down"]["remaining"] is None
    assert mock.script_fault("claude-down", recover=True)["scripts"] == {}
    assert client.messages.create(model="claude-down", max_tokens=10, messages=MSGS).content
    assert mock.seen("claude-down") == 4


def test_embeddings_and_form_endpoints_follow_scripts(mock: Mock) -> None:
    client = mock.openai()
    mock.script_fault("emb-x", fail=1, status=500)
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="emb-x", input="hello")
    assert len(client.embeddings.create(model="emb-x", input="hello").data) == 1
    mock.script_fault("whisper-x", fail=1, status=502)
    with pytest.raises(openai.InternalServerError) as ei:
        client.audio.transcriptions.create(model="whisper-x", file=("a.wav", b"RIFF0000"))
    assert ei.value.response.status_code == 502
    assert client.audio.transcriptions.create(model="whisper-x", file=("a.wav", b"RIFF0000")).text
    assert mock.faults()["seen"] == {"emb-x": 2, "whisper-x": 2}


def test_first_byte_delay_recorded_for_streams_and_json(mock: Mock) -> None:
    client = mock.openai()
    mock.script_fault("gpt-slow", first_byte_delay_ms=30, times=2)
    stream = client.chat.completions.create(model="gpt-slow", messages=MSGS, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert last_entry(mock)["script"] == {"first_byte_delay_ms": 30.0}
    assert client.chat.completions.create(model="gpt-slow", messages=MSGS).choices
    entry = last_entry(mock)
    assert entry["script"] == {"first_byte_delay_ms": 30.0} and entry["finished"]
    client.chat.completions.create(model="gpt-slow", messages=MSGS)
    assert "script" not in last_entry(mock)  # two uses, then gone
    mock.script_fault("gpt-slow", first_byte_delay_ms=10)  # until cleared
    for _ in range(2):
        client.embeddings.create(model="gpt-slow", input="x")
        assert last_entry(mock)["script"] == {"first_byte_delay_ms": 10.0}
    assert mock.faults()["scripts"]["gpt-slow"]["remaining"] is None


def test_refuse_closes_the_connection_unanswered(mock: Mock) -> None:
    client = mock.openai()
    mock.script_fault("gpt-gone", refuse=True, times=1)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-gone", messages=MSGS)
    entry = last_entry(mock)
    assert entry["script"] == {"refuse": True} and not entry["finished"]
    assert client.chat.completions.create(model="gpt-gone", messages=MSGS).choices
    mock.script_fault("claude-gone", refuse=True)
    for _ in range(2):
        with pytest.raises(anthropic.APIConnectionError):
            mock.anthropic().messages.create(model="claude-gone", max_tokens=5, messages=MSGS)
    assert mock.seen("claude-gone") == 2


def test_a_new_script_replaces_the_old_and_delete_clears_all(mock: Mock) -> None:
    mock.script_fault("m1", fail=5)
    mock.script_fault("m1", refuse=True, times=3)
    mock.script_fault("m2", first_byte_delay_ms=0)
    mock.openai().embeddings.create(model="m2", input="x")
    view = mock.faults()
    assert view["scripts"] == {"m1": {"kind": "refuse", "remaining": 3},
                               "m2": {"kind": "delay", "remaining": None, "first_byte_delay_ms": 0.0}}
    assert view["seen"] == {"m2": 1}
    resp, body = mock.call("DELETE", "/_mock/faults")
    assert resp.status == 200 and json.loads(body) == {"scripts": {}, "seen": {}}


@pytest.mark.parametrize("spec", [
    {"fail": 1},
    {"model": "", "fail": 1},
    {"model": "m"},
    {"model": "m", "fail": 1, "refuse": True},
    {"model": "m", "fail": 0},
    {"model": "m", "fail": 1, "status": 302},
    {"model": "m", "fail": 1, "status": "503"},
    {"model": "m", "fail": 1, "times": 2},
    {"model": "m", "fail": 1, "retry_after": "2\r\nX-Evil: 1"},
    {"model": "m", "refuse": True, "status": 503},
    {"model": "m", "refuse": False},
    {"model": "m", "first_byte_delay_ms": -1},
    {"model": "m", "first_byte_delay_ms": 10, "times": 0},
    {"model": "m", "recover": 1},
    {"model": "m", "fail": 1, "other": 1},
    ["m"],
])
def test_bad_scripts_refused(mock: Mock, spec: object) -> None:
    resp, body = mock.raw("/_mock/faults", spec)  # type: ignore[arg-type]
    assert resp.status == 400 and json.loads(body)["error"]
    assert mock.faults()["scripts"] == {}


def test_retry_after_number_becomes_seconds(mock: Mock) -> None:
    assert mock.script_fault("m", fail=1, retry_after=7)["scripts"]["m"]["retry_after"] == "7"


def test_client_leaving_during_first_byte_delay_is_recorded(mock: Mock) -> None:
    """What a hedging test needs: the abandoned, delayed transfer shows as a disconnect."""
    mock.script_fault("gpt-late", first_byte_delay_ms=3000, times=1)
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.2).chat.completions.create(model="gpt-late", messages=MSGS, stream=True)
    for _ in range(100):
        entry = last_entry(mock)
        if entry["disconnected"]:
            break
        time.sleep(0.02)
    assert entry["disconnected"] and entry["script"] == {"first_byte_delay_ms": 3000.0}


def test_stalled_stream_sends_its_content_then_nothing_until_the_client_leaves(mock: Mock) -> None:
    """What an idle-timeout test needs: a stream that stops mid-answer with its connection open."""
    mock.script_fault("gpt-stall", stream="stall", times=1)
    text = []
    with pytest.raises(openai.APITimeoutError):
        for chunk in mock.openai(timeout=0.5).chat.completions.create(model="gpt-stall", messages=MSGS,
                                                                      stream=True):
            text.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(text).startswith("Hello from mock gpt-stall")
    for _ in range(100):
        entry = last_entry(mock)
        if entry["disconnected"]:
            break
        time.sleep(0.02)
    assert entry["disconnected"] and entry["script"] == {"stream": "stall"}


OPENAI_TOOLS = [{"type": "function", "function": {"name": "files__echo", "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS = [{"name": "files__echo", "input_schema": {"type": "object"}}]
CALLS = [{"name": "files__echo", "arguments": {"text": "hi"}}, {"name": "files__count"}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_script_calls_then_quotes_the_result_openai(mock: Mock, stream: bool) -> None:
    client = mock.openai()
    view = mock.script_fault("gpt-mcp", tool_calls=CALLS, times=2)
    assert view["scripts"]["gpt-mcp"]["tool_calls"][1] == {"name": "files__count", "arguments": {}}
    messages: list[dict] = [{"role": "user", "content": "use the tools"}]
    if stream:
        calls: dict[int, dict] = {}
        for chunk in client.chat.completions.create(model="gpt-mcp", messages=messages, tools=OPENAI_TOOLS,
                                                    stream=True):
            for delta in chunk.choices[0].delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": delta.id, "name": delta.function.name, "arguments": ""})
                call["arguments"] += delta.function.arguments or ""
        found = [(c["name"], json.loads(c["arguments"])) for c in calls.values()]
        ids = [c["id"] for c in calls.values()]
    else:
        answer = client.chat.completions.create(model="gpt-mcp", messages=messages, tools=OPENAI_TOOLS)
        assert answer.choices[0].finish_reason == "tool_calls"
        found = [(c.function.name, json.loads(c.function.arguments)) for c in answer.choices[0].message.tool_calls]
        ids = [c.id for c in answer.choices[0].message.tool_calls]
    assert found == [("files__echo", {"text": "hi"}), ("files__count", {})]
    assert last_entry(mock)["script"] == {"tool_calls": 2}
    messages += [{"role": "assistant", "tool_calls": [
        {"id": ids[0], "type": "function", "function": {"name": "files__echo", "arguments": '{"text":"hi"}'}},
        {"id": ids[1], "type": "function", "function": {"name": "files__count", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": ids[0], "content": "echo: hi"},
        {"role": "tool", "tool_call_id": ids[1], "content": [{"type": "text", "text": "count 1"}]}]
    # The quoting answer spends no use of the script; the next calling one would.
    for _ in range(2):
        answer = client.chat.completions.create(model="gpt-mcp", messages=messages, tools=OPENAI_TOOLS)
        assert answer.choices[0].message.content == "Tool result: echo: hi | count 1"
        assert last_entry(mock)["script"] == {"tool_calls": 0}
    assert mock.faults()["scripts"]["gpt-mcp"]["remaining"] == 1
    final = client.chat.completions.create(model="gpt-mcp", messages=messages[:1], tools=OPENAI_TOOLS,
                                           tool_choice="none")
    assert final.choices[0].message.content.startswith("Hello from mock gpt-mcp")


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_script_calls_then_quotes_the_result_anthropic(mock: Mock, stream: bool) -> None:
    client = mock.anthropic()
    mock.script_fault("claude-mcp", tool_calls=CALLS[:1])
    messages: list[dict] = [{"role": "user", "content": "use the tool"}]
    kwargs = {"model": "claude-mcp", "max_tokens": 100, "tools": ANTHROPIC_TOOLS}
    if stream:
        with client.messages.stream(messages=messages, **kwargs) as events:
            answer = events.get_final_message()
    else:
        answer = client.messages.create(messages=messages, **kwargs)
    assert answer.stop_reason == "tool_use"
    (use,) = [block for block in answer.content if block.type == "tool_use"]
    assert (use.name, use.input) == ("files__echo", {"text": "hi"})
    messages += [{"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "echo: hi"}]}]
    quoted = client.messages.create(messages=messages, **kwargs)
    assert quoted.content[0].text == "Tool result: echo: hi" and quoted.stop_reason == "end_turn"


def test_tool_calls_script_after_result_call_keeps_calling(mock: Mock) -> None:
    client = mock.openai()
    mock.script_fault("gpt-loop", tool_calls=CALLS[:1], after_result="call")
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "files__echo", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "echo: hi"}]
    answer = client.chat.completions.create(model="gpt-loop", messages=messages, tools=OPENAI_TOOLS)
    assert answer.choices[0].message.tool_calls[0].function.name == "files__echo"


def test_tool_calls_script_after_result_fail_fails_once_the_tools_ran(mock: Mock) -> None:
    client = mock.openai()
    mock.script_fault("gpt-loop", tool_calls=CALLS[:1], after_result="fail")
    first = client.chat.completions.create(model="gpt-loop", messages=MSGS, tools=OPENAI_TOOLS)
    assert first.choices[0].message.tool_calls[0].function.name == "files__echo"
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "files__echo", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "echo: hi"}]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-loop", messages=messages, tools=OPENAI_TOOLS)
    assert last_entry(mock)["script"] == {"fail": 503, "retry_after": None}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_script_says_its_text_before_the_calls(mock: Mock, stream: bool) -> None:
    mock.script_fault("gpt-loop", tool_calls=CALLS[:1], say="Let me look.")
    client = mock.openai()
    if stream:
        chunks = list(client.chat.completions.create(model="gpt-loop", messages=MSGS, tools=OPENAI_TOOLS,
                                                     stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(model="gpt-loop", messages=MSGS, tools=OPENAI_TOOLS)
        text = answer.choices[0].message.content or ""
        assert answer.choices[0].message.tool_calls
    assert text == "Let me look."
    claude = mock.anthropic().messages.create(model="gpt-loop", max_tokens=64, messages=MSGS,
                                              tools=[{"name": "files__echo", "input_schema": {"type": "object"}}])
    assert [b.type for b in claude.content] == ["text", "tool_use"] and claude.content[0].text == "Let me look."


@pytest.mark.parametrize(("spec", "expected"), [
    ({"tool_calls": []}, "tool_calls must be a list of 1 to 16"),
    ({"tool_calls": [{"name": "x", "arguments": [1]}]}, "tool_calls must be a list"),
    ({"tool_calls": [{"name": "x"}], "after_result": "maybe"}, "after_result must be one of"),
    ({"fail": 1, "after_result": "call"}, "after_result and say go with tool_calls"),
    ({"fail": 1, "say": "hi"}, "after_result and say go with tool_calls"),
    ({"tool_calls": [{"name": "x"}], "say": 3}, "say must be a string"),
])
def test_bad_tool_calls_scripts_are_refused(mock: Mock, spec: dict, expected: str) -> None:
    response, body = mock.raw("/_mock/faults", {"model": "m", **spec})
    assert response.status == 400 and expected in body.decode(), body
