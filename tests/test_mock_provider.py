"""Tests of bench/mock_provider.py, driven through the official OpenAI and Anthropic SDKs.

The gateway's own tests trust the mock to speak both wire formats exactly, so the mock is
checked with the real client libraries (and raw HTTP where the SDKs hide details).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil

from bench.mock_provider import make_app, parse_model
from tests import support

ROOT = Path(__file__).resolve().parent.parent
MSGS = [{"role": "user", "content": "hi there"}]
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}},
]
ANTHROPIC_TOOLS = [
    {"name": "lookup", "input_schema": {"type": "object"}},
    {"name": "clock", "input_schema": {"type": "object"}},
]


class Mock(support.Mock):
    """The shared mock process, plus raw HTTP for what the SDKs hide."""

    def raw(
        self, path: str, body: bytes | dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        conn.request("POST" if data is not None else "GET", path, body=data,
                     headers=headers or {})
        resp = conn.getresponse()
        content = resp.read()
        conn.close()
        return resp, content


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    m = Mock()
    yield m
    out, err = m.stop()
    assert out == "", out  # exactly one stdout line, nothing per request
    assert "Traceback" not in err and "Exception" not in err, err


def _sse_events(body: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        name, data = None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data))
    return events


# --------------------------------------------------------------------------- selectors


def test_parse_model_selectors() -> None:
    b = parse_model("gpt-delay-50-tools")
    assert (b.delay_ms, b.tools, b.fault) == (50.0, True, None)
    assert parse_model("x-fault-429").fault_status == 429
    assert parse_model("x-fault-slowheaders-fault-cut").slow_headers
    assert parse_model("x-fault-slowheaders-fault-cut").fault == "cut"
    assert parse_model("claude-sonnet-4-5") == parse_model("plain")
    assert parse_model("x-fault-bogus").fault is None


# --------------------------------------------------------------------------- OpenAI


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
    events = _sse_events(body)
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


# --------------------------------------------------------------------------- Anthropic


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
    events = _sse_events(body)
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


# --------------------------------------------------------------------------- faults

FAULTS = [
    (400, openai.BadRequestError, anthropic.BadRequestError, "invalid_request_error"),
    (401, openai.AuthenticationError, anthropic.AuthenticationError, "authentication_error"),
    (429, openai.RateLimitError, anthropic.RateLimitError, "rate_limit_error"),
    (500, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    (502, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    (503, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    (529, openai.InternalServerError, anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "oai_exc", "ant_exc", "ant_type"), FAULTS)
def test_fault_status(mock: Mock, status: int, oai_exc: type[Exception],
                      ant_exc: type[Exception], ant_type: str) -> None:
    with pytest.raises(oai_exc) as ei:
        mock.openai().chat.completions.create(model=f"gpt-fault-{status}", messages=MSGS)
    resp = ei.value.response  # type: ignore[attr-defined]
    assert resp.status_code == status
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    if status == 429:
        assert err["type"] == "rate_limit_error" and resp.headers["retry-after"] == "1"
    with pytest.raises(ant_exc) as ai:
        mock.anthropic().messages.create(
            model=f"c-fault-{status}", max_tokens=10, messages=MSGS, stream=status == 429)
    resp = ai.value.response  # type: ignore[attr-defined]
    assert resp.status_code == status
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == ant_type
    assert body["error"]["message"]
    if status == 429:
        assert resp.headers["retry-after"] == "1"


def test_fault_cut(mock: Mock) -> None:
    oc, ac = mock.openai(), mock.anthropic()
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        for c in oc.chat.completions.create(model="gpt-fault-cut", messages=MSGS, stream=True):
            got.append(c)
    assert len(got) == 2
    with pytest.raises(openai.APIConnectionError):
        oc.chat.completions.create(model="gpt-fault-cut", messages=MSGS)
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        list(ac.messages.create(model="c-fault-cut", max_tokens=10, messages=MSGS, stream=True))
    with pytest.raises(anthropic.APIConnectionError):
        ac.messages.create(model="c-fault-cut", max_tokens=10, messages=MSGS)


def test_fault_stream_error_event(mock: Mock) -> None:
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(mock.openai().chat.completions.create(
            model="gpt-fault-streamerror", messages=MSGS, stream=True))
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(mock.anthropic().messages.create(
            model="c-fault-streamerror", max_tokens=10, messages=MSGS, stream=True))


def test_fault_empty(mock: Mock) -> None:
    resp, body = mock.raw("/v1/chat/completions", {"model": "x-fault-empty", "messages": MSGS})
    assert (resp.status, body, resp.getheader("Content-Type")) == (200, b"", "application/json")


def test_fault_hang_and_slowheaders(mock: Mock) -> None:
    mock.clear()
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.3).chat.completions.create(model="x-fault-hang", messages=MSGS)
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.3).chat.completions.create(
            model="x-fault-slowheaders", messages=MSGS)
    t0 = time.monotonic()
    r = mock.openai(timeout=5).chat.completions.create(model="x-fault-slowheaders", messages=MSGS)
    assert time.monotonic() - t0 >= 1.9
    assert r.choices[0].message.content
    log = mock.requests()
    assert [e["disconnected"] for e in log][:1] == [True]
    assert log[0]["finished"] is False


# --------------------------------------------------------------------------- delays, log


def test_delay_header_and_default(mock: Mock) -> None:
    t0 = time.monotonic()
    mock.raw("/v1/chat/completions", {"model": "x", "messages": MSGS, "stream": True},
             {"x-mock-delay-ms": "40"})
    assert time.monotonic() - t0 >= 0.3  # 11 events, 10 gaps of 40 ms
    t0 = time.monotonic()
    mock.raw("/v1/chat/completions", {"model": "x", "messages": MSGS, "stream": True})
    assert time.monotonic() - t0 < 0.3


def test_disconnect_mid_stream_recorded(mock: Mock) -> None:
    mock.clear()
    stream = mock.openai().chat.completions.create(
        model="gpt-delay-200", messages=MSGS, stream=True)
    it = iter(stream)
    next(it)
    next(it)
    stream.close()
    for _ in range(50):
        log = mock.requests()
        if log and log[0]["disconnected"]:
            break
        time.sleep(0.05)
    assert log[0]["disconnected"] is True and log[0]["finished"] is False


def test_request_log(mock: Mock) -> None:
    mock.clear()
    mock.openai().chat.completions.create(model="gpt-4o", messages=MSGS)
    mock.anthropic().messages.create(model="c", max_tokens=5, messages=MSGS)
    mock.raw("/v1/messages?x=1", b"\xff\xfe not json", {"x-api-key": "prov-key"})
    log = mock.requests()
    assert [e["path"] for e in log] == ["/v1/chat/completions", "/v1/messages", "/v1/messages"]
    assert [e["id"] for e in log] == sorted(e["id"] for e in log)
    first = log[0]
    assert first["method"] == "POST" and first["finished"] and not first["disconnected"]
    assert first["headers"]["authorization"] == "Bearer sk-oai"
    assert json.loads(first["body"])["model"] == "gpt-4o"
    assert log[1]["headers"]["authorization"] == "Bearer sk-ant"
    assert log[2]["headers"]["x-api-key"] == "prov-key" and log[2]["query"] == "x=1"
    assert "body" not in log[2] and log[2]["body_b64"] == "//4gbm90IGpzb24="
    assert log[2]["status"] == 400
    assert all(isinstance(e["started"], float) for e in log)
    mock.clear()
    assert mock.requests() == []


def test_errors_for_bad_requests(mock: Mock) -> None:
    resp, body = mock.raw("/v1/nope", {"a": 1})
    assert resp.status == 404 and json.loads(body)["error"]["type"] == "invalid_request_error"
    resp, body = mock.raw("/v1/chat/completions", b"{not json")
    assert resp.status == 400 and "error" in json.loads(body)
    resp, body = mock.raw("/v1/messages", b"[1, 2]")
    assert resp.status == 400 and json.loads(body)["type"] == "error"
    resp, body = mock.raw("/_mock/health", None)
    assert (resp.status, body) == (200, b"OK")


def test_no_log_flag() -> None:
    m = Mock("--no-log", "--delay-ms", "1")
    try:
        m.openai().chat.completions.create(model="x", messages=MSGS)
        assert m.requests() == []
    finally:
        m.stop()


def test_make_app_in_process_and_bounded_log() -> None:
    async def run() -> None:
        app = make_app(log_limit=3)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            for i in range(5):
                body = json.dumps({"model": "m", "messages": [{"role": "user", "content": str(i)}]})
                r = await client.fetch(f"http://127.0.0.1:{port}/v1/chat/completions",
                                       method="POST", body=body)
                assert json.loads(r.body)["choices"][0]["message"]["content"].endswith(str(i))
            r = await client.fetch(f"http://127.0.0.1:{port}/_mock/requests")
            assert [json.loads(e["body"])["messages"][0]["content"]
                    for e in json.loads(r.body)] == ["2", "3", "4"]
        finally:
            server.stop()

    asyncio.run(run())
