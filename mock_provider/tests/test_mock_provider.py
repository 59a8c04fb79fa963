"""Tests of the mock provider (mock_provider/), driven through the official OpenAI and Anthropic SDKs.

The gateway's own tests trust the mock to speak both wire formats exactly, so the mock is
checked with the real client libraries (and raw HTTP where the SDKs hide details).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import random
import re
import socket
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

from mock_provider import (
    MODEL_IDS,
    embedding_vector,
    image_png,
    make_app,
    parse_model,
    speech_bytes,
)
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
        return self.call("POST" if body is not None else "GET", path, body, headers)

    def call(
        self, method: str, path: str, body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, body=data, headers=headers or {})
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


# --------------------------------------------------------------------------- extension endpoints

COOKIE = "mock_session=1; Path=/"


def _multipart(fields: dict[str, str], filename: str, content: bytes,
               boundary: str = "mockBoundary7MA4YWxkTrZu0gW") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand (so the test controls every byte)."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _chunked_post(port: int, path: str, body: dict[str, Any]) -> tuple[str, list[int], bytes]:
    """POST over a bare socket; return the head, the chunk sizes and the de-chunked body."""
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + data)
        while chunk := sock.recv(1 << 20):
            buf += chunk
    resp_head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    sizes: list[int] = []
    out = bytearray()
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            break
        sizes.append(n)
        out += rest[:n]
        rest = rest[n + 2:]
    return resp_head.decode(), sizes, bytes(out)


def test_v1_request_id_and_cookie_headers(mock: Mock) -> None:
    mock.clear()
    seen = []
    for path, body in [("/v1/chat/completions", {"model": "m", "messages": MSGS}),
                       ("/v1/models", None), ("/v1/nope", {"a": 1}),
                       ("/v1/embeddings", {"model": "e-fault-429", "input": "x"})]:
        resp, _ = mock.raw(path, body)
        rid = resp.getheader("x-request-id")
        assert re.fullmatch(r"req_mock_\d+", rid or ""), (path, rid)
        assert resp.getheader("Set-Cookie") == COOKIE
        seen.append(rid)
    assert len(set(seen)) == 4
    assert [e["request_id"] for e in mock.requests()] == seen
    resp, _ = mock.raw("/_mock/health", None)
    assert resp.getheader("x-request-id") is None and resp.getheader("Set-Cookie") is None


def test_embeddings(mock: Mock) -> None:
    mock.clear()
    client = mock.openai()
    r = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "x"])
    assert json.loads(mock.requests()[-1]["body"])["encoding_format"] == "base64"  # the SDK's default
    assert [d.embedding for d in r.data] == [embedding_vector("hello world"), embedding_vector("x")]
    assert [(d.index, d.object) for d in r.data] == [(0, "embedding"), (1, "embedding")]
    assert (r.object, r.model, r.usage.prompt_tokens, r.usage.total_tokens) == (
        "list", "text-embedding-3-small", 3, 3)
    f = client.embeddings.create(model="m", input="hello world", encoding_format="float")
    assert f.data[0].embedding == embedding_vector("hello world") and len(f.data[0].embedding) == 8
    _, body = mock.raw("/v1/embeddings", {"model": "m", "input": "hello world", "encoding_format": "float"})
    assert json.loads(body)["data"][0]["embedding"] == embedding_vector("hello world")
    _, body = mock.raw("/v1/embeddings", {"model": "m", "input": "hello world", "encoding_format": "base64"})
    b64 = json.loads(body)["data"][0]["embedding"]
    assert list(memoryview(base64.b64decode(b64)).cast("f")) == embedding_vector("hello world")
    t = client.embeddings.create(model="m", input=[[1, 2, 3], [4]], dimensions=16)
    assert [d.embedding for d in t.data] == [embedding_vector([1, 2, 3], 16), embedding_vector([4], 16)]
    assert t.usage.prompt_tokens == 4
    assert client.embeddings.create(model="m", input=[5, 6]).data[0].embedding == embedding_vector([5, 6])
    for bad in ({"model": "m", "input": 5}, {"model": "m", "input": []},
                {"model": "m", "input": "x", "encoding_format": "hex"}):
        resp, body = mock.raw("/v1/embeddings", bad)
        assert resp.status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"


def test_images_generate(mock: Mock) -> None:
    client = mock.openai()
    r = client.images.generate(model="gpt-image-1", prompt="a red cat", n=2)
    assert r.data is not None and r.created
    pngs = [base64.b64decode(d.b64_json or "") for d in r.data]
    assert pngs == [image_png("a red cat", 0), image_png("a red cat", 1)] and pngs[0] != pngs[1]
    assert pngs[0].startswith(b"\x89PNG\r\n\x1a\n") and pngs[0].endswith(b"IEND\xaeB`\x82")
    assert r.usage is not None and r.usage.input_tokens == 3
    u = client.images.generate(model="dall-e-3", prompt="a red cat", response_format="url")
    assert u.data is not None and len(u.data) == 1
    assert (u.data[0].url or "").startswith("https://") and u.data[0].b64_json is None
    resp, _ = mock.raw("/v1/images/generations", {"prompt": "x", "n": 11})
    assert resp.status == 400


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SDK marks translations deprecated
def test_audio_transcription_echoes_upload(mock: Mock) -> None:
    mock.clear()
    client = mock.openai()
    data = random.Random(7).randbytes(1 << 20)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", data, "audio/wav"), language="en",
        timestamp_granularities=["word", "segment"], response_format="verbose_json")
    r = raw.parse()
    x = r.model_extra["x_mock"]  # type: ignore[index]
    assert r.text == "transcribed 1048576 bytes"
    assert (x["file_sha256"], x["file_bytes"]) == (hashlib.sha256(data).hexdigest(), 1 << 20)
    assert (x["filename"], x["file_content_type"]) == ("clip.wav", "audio/wav")
    assert x["fields"] == {"model": "whisper-1", "language": "en", "response_format": "verbose_json",
                           "timestamp_granularities[]": ["word", "segment"]}
    assert raw.headers["x-mock-file-sha256"] == x["file_sha256"]
    assert raw.headers["x-mock-file-bytes"] == str(1 << 20)
    entry = mock.requests()[-1]
    assert entry["headers"]["content-type"] == x["content_type"] == (
        f"multipart/form-data; boundary={x['boundary']}")
    assert entry["body_size"] == x["body_bytes"] > 1 << 20
    assert "body" not in entry and len(entry["body_sha256"]) == 64
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc"),
                                              response_format="text")
    assert text == "transcribed 3 bytes\n"
    tr = client.audio.translations.create(model="whisper-1", file=("a.mp3", b"abcd"))
    assert tr.text == "translated 4 bytes"


def test_audio_upload_hand_built_and_large(mock: Mock) -> None:
    """Quoted boundaries survive, and bodies past Tornado's 100 MB default are accepted."""
    body, headers = _multipart({"model": "whisper-1"}, "q.wav", b"hello")
    headers["Content-Type"] = 'multipart/form-data; boundary="mockBoundary7MA4YWxkTrZu0gW"'
    resp, out = mock.raw("/v1/audio/transcriptions", body, headers)
    x = json.loads(out)["x_mock"]
    assert resp.status == 200 and x["boundary"] == "mockBoundary7MA4YWxkTrZu0gW"
    assert x["fields"] == {"model": "whisper-1"} and x["file_bytes"] == 5
    big = b"\x00\x01\x02\x03" * (28 << 20)  # 112 MiB
    body, headers = _multipart({"model": "whisper-1"}, "big.wav", big)
    resp, out = mock.raw("/v1/audio/transcriptions", body, headers)
    assert resp.status == 200, out[:200]
    assert json.loads(out)["x_mock"]["file_sha256"] == hashlib.sha256(big).hexdigest()
    resp, out = mock.raw("/v1/audio/transcriptions", {"model": "whisper-1"})
    assert resp.status == 400
    mock.clear()
    resp, out = mock.raw("/v1/audio/transcriptions", b"garbage",
                         {"Content-Type": "multipart/form-data; boundary=zz"})
    assert resp.status == 400 and "no final boundary" in json.loads(out)["error"]["message"]
    assert [(e["path"], e["status"], e["body"]) for e in mock.requests()] == [
        ("/v1/audio/transcriptions", 400, "garbage")]


def test_audio_speech(mock: Mock) -> None:
    client = mock.openai()
    r = client.audio.speech.create(model="tts-1", input="hello there", voice="alloy")
    assert r.content == speech_bytes("hello there", "alloy", 512 * 1024)
    assert r.response.headers["content-type"] == "audio/mpeg"
    assert r.response.headers["transfer-encoding"] == "chunked"
    for fmt, ctype in [("wav", "audio/wav"), ("opus", "audio/opus"), ("aac", "audio/aac"),
                       ("flac", "audio/flac"), ("pcm", "audio/pcm")]:
        r = client.audio.speech.create(model="tts-1", input="x y", voice="nova", response_format=fmt,  # type: ignore[arg-type]
                                       extra_body={"x_mock_bytes": 1000})
        assert r.content == speech_bytes("x y", "nova", 1000)
        assert r.response.headers["content-type"] == ctype
    head, sizes, body = _chunked_post(mock.port, "/v1/audio/speech",
                                      {"model": "tts-1", "input": "hi", "voice": "echo"})
    assert "Transfer-Encoding: chunked" in head and sizes == [64 * 1024] * 8
    assert body == speech_bytes("hi", "echo", 512 * 1024)
    sse = client.audio.speech.create(model="gpt-4o-mini-tts", input="hi", voice="echo",
                                     stream_format="sse", extra_body={"x_mock_bytes": 100_000})
    events = [json.loads(d) for n, d in _sse_events(sse.content)]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 2 + ["speech.audio.done"]
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == speech_bytes("hi", "echo", 100_000)
    resp, _ = mock.raw("/v1/audio/speech", {"model": "tts-1", "input": "x", "voice": "a",
                                            "response_format": "ogg"})
    assert resp.status == 400


def test_moderations(mock: Mock) -> None:
    client = mock.openai()
    r = client.moderations.create(model="omni-moderation-latest", input=["I will harm you", "hello"])
    assert r.id.startswith("modr-") and r.model == "omni-moderation-latest"
    assert [x.flagged for x in r.results] == [True, False]
    cats, scores = r.results[0].categories, r.results[0].category_scores
    assert cats.harassment and cats.self_harm and not cats.hate and not cats.violence
    assert (scores.harassment, scores.hate) == (0.99, 0.001)
    assert not any(r.results[1].categories.model_dump().values())
    mm = client.moderations.create(input=[{"type": "text", "text": "harmful"},
                                          {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    assert [x.flagged for x in mm.results] == [True]


def test_rerank(mock: Mock) -> None:
    docs = ["a blue whale", "the red fox", "red fox jumps high", {"text": "jumps!"}]
    resp, body = mock.raw("/v1/rerank", {"model": "rerank-v3.5", "query": "Red fox jumps",
                                         "documents": docs, "top_n": 3, "return_documents": True})
    out = json.loads(body)
    assert resp.status == 200 and out["id"].startswith("rerank-") and out["model"] == "rerank-v3.5"
    assert [(r["index"], r["relevance_score"]) for r in out["results"]] == [(2, 1.0), (1, 2 / 3), (3, 1 / 3)]
    assert [r["document"]["text"] for r in out["results"]] == [
        "red fox jumps high", "the red fox", "jumps!"]
    assert out["meta"]["billed_units"]["search_units"] == 1 and out["usage"]["total_tokens"] == 3 + 11
    _, body = mock.raw("/v1/rerank", {"model": "r", "query": "fox", "documents": docs})
    results = json.loads(body)["results"]
    assert [r["index"] for r in results] == [1, 2, 0, 3] and all("document" not in r for r in results)
    resp, _ = mock.raw("/v1/rerank", {"model": "r", "query": "fox", "documents": [1]})
    assert resp.status == 400
    resp, _ = mock.raw("/v1/rerank", {"model": "r-fault-429", "query": "fox", "documents": ["a"]})
    assert resp.status == 429 and resp.getheader("Retry-After") == "1"


def test_a2a_json_rpc_echo(mock: Mock) -> None:
    params = {"message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}]}}
    resp, body = mock.raw("/v1/a2a", {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": params})
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"jsonrpc": "2.0", "id": 7,
                                "result": {"method": "message/send", "params": params}}
    resp, body = mock.raw("/v1/a2a", {"jsonrpc": "2.0", "method": "notify"})
    assert (resp.status, body) == (204, b"")
    _, body = mock.raw("/v1/a2a", b"{nope")
    assert json.loads(body)["error"]["code"] == -32700
    _, body = mock.raw("/v1/a2a", {"id": "x", "method": "m"})
    assert json.loads(body) == {"jsonrpc": "2.0", "id": "x",
                                "error": {"code": -32600, "message": "Invalid Request"}}
    _, body = mock.call("POST", "/v1/a2a", [{"jsonrpc": "2.0", "id": 1, "method": "a"},
                                            {"jsonrpc": "2.0", "method": "b"}])
    assert json.loads(body) == [{"jsonrpc": "2.0", "id": 1, "result": {"method": "a", "params": None}}]


def test_responses_create_retrieve_delete(mock: Mock) -> None:
    client = mock.openai()
    r = client.responses.create(model="gpt-4o", input="hello there", instructions="be nice")
    assert (r.object, r.status, r.model) == ("response", "completed", "gpt-4o")
    assert r.id.startswith("resp_") and r.output_text == "Hello from mock gpt-4o! You said: hello there"
    msg = r.output[0]
    assert msg.type == "message" and msg.role == "assistant" and msg.content[0].type == "output_text"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (4, 8, 12)
    got = client.responses.retrieve(r.id)
    assert (got.id, got.output_text) == (r.id, r.output_text)
    resp, body = mock.call("DELETE", f"/v1/responses/{r.id}")
    assert json.loads(body) == {"id": r.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    r2 = client.responses.create(model="m", input=[{"role": "user", "content": "yo"}])
    assert client.responses.delete(r2.id) is None  # the SDK discards the body
    r3 = client.responses.create(model="m", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r3.id)
    short = client.responses.create(model="m", input="x", max_output_tokens=3)
    assert (short.status, short.output_text) == ("incomplete", "Hello from mock")
    assert short.incomplete_details is not None and short.incomplete_details.reason == "max_output_tokens"


def test_responses_stream(mock: Mock) -> None:
    client = mock.openai()
    events = list(client.responses.create(
        model="gpt-4o", input=[{"role": "user", "content": [{"type": "input_text", "text": "hey you"}]}],
        stream=True))
    assert [e.type for e in events] == (
        ["response.created", "response.in_progress", "response.output_item.added",
         "response.content_part.added"] + ["response.output_text.delta"] * 8
        + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
           "response.completed"])
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello from mock gpt-4o! You said: hey you"
    done = events[-1]
    assert done.type == "response.completed" and done.response.status == "completed"
    assert done.response.output_text == text and done.response.usage is not None
    assert client.responses.retrieve(done.response.id).output_text == text
    resp, body = mock.raw("/v1/responses", {"model": "m", "input": "a", "stream": True})
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    for name, data in _sse_events(body):
        assert json.loads(data)["type"] == name
    with client.responses.stream(model="gpt-4o-tools", input="x", tools=[
            {"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]) as s:
        final = s.get_final_response()
    calls = [(o.name, json.loads(o.arguments)) for o in final.output if o.type == "function_call"]
    assert calls == [("lookup", {"city": "Paris"}), ("lookup", {"tz": "UTC"})]


def test_files_crud(mock: Mock) -> None:
    client = mock.openai()
    content = b'{"custom_id":"a"}\n{"custom_id":"b"}\n'
    f = client.files.create(file=("in.jsonl", content), purpose="batch")
    assert (f.object, f.bytes, f.filename, f.purpose, f.status) == (
        "file", len(content), "in.jsonl", "batch", "processed")
    assert f.id.startswith("file-")
    assert f.model_extra["x_mock"]["file_sha256"] == hashlib.sha256(content).hexdigest()  # type: ignore[index]
    g = client.files.create(file=("b.txt", b"x"), purpose="assistants")
    ids = [x.id for x in client.files.list()]
    assert ids.index(g.id) < ids.index(f.id)  # newest first
    assert [x.id for x in client.files.list(order="asc")][-2:] == [f.id, g.id]
    batch_ids = [x.id for x in client.files.list(purpose="batch")]
    assert f.id in batch_ids and g.id not in batch_ids
    page = client.files.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    got = client.files.retrieve(f.id)
    assert (got.id, got.bytes, got.filename) == (f.id, f.bytes, f.filename)
    assert client.files.content(f.id).content == content
    resp, body = mock.raw(f"/v1/files/{f.id}/content", None)
    assert resp.getheader("Content-Type") == "application/octet-stream" and body == content
    d = client.files.delete(f.id)
    assert (d.id, d.deleted, d.object) == (f.id, True, "file")
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as ei:
            call(f.id)
        assert ei.value.response.json()["error"]["type"] == "invalid_request_error"
    resp, _ = mock.raw("/v1/files", *_multipart({}, "a.txt", b"x"))
    assert resp.status == 400  # no purpose


def test_batches(mock: Mock) -> None:
    client = mock.openai()
    f = client.files.create(file=("in.jsonl", b"{}\n{}\n{}\n"), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                              completion_window="24h", metadata={"k": "v"})
    assert (b.object, b.status, b.input_file_id, b.metadata) == ("batch", "validating", f.id, {"k": "v"})
    assert b.request_counts is not None and b.request_counts.total == 3
    assert client.batches.retrieve(b.id).status == "validating"
    assert b.id in [x.id for x in client.batches.list()]
    c = client.batches.cancel(b.id)
    assert c.status == "cancelling" and c.cancelling_at
    r = client.batches.retrieve(b.id)
    assert r.status == "cancelled" and r.cancelled_at
    assert client.batches.cancel(b.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    resp, _ = mock.raw("/v1/batches", {"endpoint": "/v1/chat/completions"})
    assert resp.status == 400


def test_models_retrieve(mock: Mock) -> None:
    m = mock.openai().models.retrieve("gpt-4o-mini")
    assert (m.id, m.object, m.owned_by) == ("gpt-4o-mini", "model", "mock")
    with pytest.raises(openai.NotFoundError):
        mock.openai().models.retrieve("x-fault-404")


def test_models_catalog_config(mock: Mock) -> None:
    client = mock.openai()
    try:
        assert mock.config() == {"models_fault": None, "models": list(MODEL_IDS)}
        assert mock.config(models=["a", "b"])["models"] == ["a", "b"]
        assert [m.id for m in client.models.list()] == ["a", "b"]
        mock.config(models_fault="500")
        with pytest.raises(openai.InternalServerError):
            client.models.list()
        assert client.models.retrieve("a").id == "a"  # only the catalog listing is affected
        mock.config(models_fault=503)
        resp, body = mock.raw("/v1/models", None)
        assert resp.status == 503 and json.loads(body)["error"]["type"] == "service_unavailable_error"
        mock.config(models_fault="slow-300")
        t0 = time.monotonic()
        assert [m.id for m in client.models.list()] == ["a", "b"]
        assert time.monotonic() - t0 >= 0.3
        mock.config(models_fault="hang")
        with pytest.raises(openai.APITimeoutError):
            mock.openai(timeout=0.3).models.list()
        for bad in ({"models_fault": "bogus"}, {"models_fault": "600"}, {"models": "a"},
                    {"models": [1]}, {"other": 1}):
            resp, _ = mock.raw("/_mock/config", bad)
            assert resp.status == 400, bad
        assert mock.config(models_fault=None) == {"models_fault": None, "models": ["a", "b"]}
        assert mock.config(models=None)["models"] == list(MODEL_IDS)
    finally:
        mock.call("DELETE", "/_mock/config")
    assert mock.config() == {"models_fault": None, "models": list(MODEL_IDS)}


def test_request_log_large_bodies_hashed(mock: Mock) -> None:
    mock.clear()
    small = json.dumps({"model": "m", "input": "x"}).encode()
    limit = json.dumps({"model": "m", "input": "w" * (65536 - 27)}).encode()
    big = json.dumps({"model": "m", "input": "word " * 20000}).encode()
    assert len(limit) == 65536
    for body in (small, limit, big):
        resp, _ = mock.raw("/v1/embeddings", body, {"Content-Type": "application/json"})
        assert resp.status == 200
    log = mock.requests()
    assert [e["body_size"] for e in log] == [len(small), len(limit), len(big)]
    assert log[0]["body"] == small.decode() and log[1]["body"] == limit.decode()
    assert "body_sha256" not in log[1]
    assert "body" not in log[2] and log[2]["body_sha256"] == hashlib.sha256(big).hexdigest()


def test_extension_endpoint_faults(mock: Mock) -> None:
    client = mock.openai()
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="e-fault-429", input="x")
    with pytest.raises(openai.InternalServerError):
        client.images.generate(model="i-fault-503", prompt="x")
    with pytest.raises(openai.RateLimitError):  # model read from the multipart form
        client.audio.transcriptions.create(model="w-fault-429", file=("a.wav", b"abc"))
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="t-fault-400", input="x", voice="alloy")
    with pytest.raises(openai.InternalServerError):
        client.moderations.create(model="m-fault-500", input="x")
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="r-fault-429", input="x")
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.3).embeddings.create(model="e-fault-hang", input="x")
    with pytest.raises(openai.APIConnectionError):
        client.audio.speech.create(model="t-fault-cut", input="x", voice="alloy").read()
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="r-fault-cut", input="x", stream=True))
    events = list(client.responses.create(model="r-fault-streamerror", input="x", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    t0 = time.monotonic()
    client.embeddings.create(model="e-delay-200", input="x")
    assert time.monotonic() - t0 >= 0.2
