"""Mock LLM provider speaking the OpenAI and Anthropic wire formats.

The gateway's tests, demo and benchmark need an upstream that is real HTTP
(so pycurl, chunked streaming and disconnects are exercised for real) yet
deterministic and cheap.  This module is that upstream:

    python -m bench.mock_provider --port 9001 [--host 127.0.0.1] [--delay-ms 0] [--no-log]

prints ``mock provider listening on HOST:PORT`` once listening (``--port 0``
picks a free port).  ``make_app()`` builds the same Tornado application for
in-process use.

Behaviour is chosen from ``-``-separated tokens in the request's model name
(the gateway rewrites model names, so a test picks behaviour by routing to a
model), e.g. ``gpt-delay-50-tools``:

* ``delay-<ms>``  sleep between stream events (once before a non-stream reply);
  else header ``x-mock-delay-ms``; else ``--delay-ms``.
* ``tools``       two parallel tool calls; ``thinking`` (Anthropic) a thinking block.
* ``fault-<status>`` (400..599, e.g. 429 with ``Retry-After: 1``), ``fault-hang``,
  ``fault-cut``, ``fault-empty``, ``fault-slowheaders``, ``fault-streamerror``.

Control API: ``GET|DELETE /_mock/requests``, ``GET /_mock/health``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import itertools
import re
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web
from tornado.iostream import StreamClosedError

__all__ = ["Behaviour", "RequestLog", "make_app", "main", "parse_model"]

MODEL_IDS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "mock-model",
)
DEFAULT_TOOL_NAMES: tuple[str, str] = ("get_weather", "get_time")
TOOL_ARGUMENTS: tuple[dict[str, str], dict[str, str]] = ({"city": "Paris"}, {"tz": "UTC"})
THINKING_TEXT = "The user wants a reply. I will greet them and echo their words."
THINKING_SIGNATURE = "bW9jay1zaWduYXR1cmU="
SLOW_HEADERS_S = 2.0
DEFAULT_LOG_LIMIT = 1000
CREATED = 1_700_000_000

# Words with their leading whitespace, so "".join(chunks) == reply text exactly.
_WORD_RE = re.compile(r"\s*\S+")
_ids = itertools.count(1)

_NAMED_FAULTS = frozenset({"hang", "cut", "empty", "slowheaders", "streamerror"})

# status -> (OpenAI error.type, OpenAI error.code)
_OPENAI_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("service_unavailable_error", "service_unavailable"),
    529: ("server_error", "overloaded"),
}
# status -> Anthropic error.type
_ANTHROPIC_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
_REASONS: dict[int, str] = {529: "Overloaded"}


# --------------------------------------------------------------------------- behaviour


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the model name asks the mock to do (parsed once per distinct name)."""

    delay_ms: float | None = None
    tools: bool = False
    thinking: bool = False
    fault: str | None = None  # "429", "500", ..., "hang", "cut", "empty", "streamerror"
    slow_headers: bool = False

    @property
    def fault_status(self) -> int | None:
        """The HTTP status a ``fault-<status>`` asks for, else None."""
        return int(self.fault) if self.fault is not None and self.fault.isdigit() else None


@functools.lru_cache(maxsize=4096)
def parse_model(model: str) -> Behaviour:
    """Read the behaviour selectors out of a model name like ``gpt-delay-50-tools``.

    Cached: the benchmark sends the same few names millions of times.
    """
    tokens = model.lower().split("-")
    delay: float | None = None
    fault: str | None = None
    tools = thinking = slow = False
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok == "tools":
            tools = True
        elif tok == "thinking":
            thinking = True
        elif tok == "delay" and delay is None and nxt.isdigit():
            delay = float(nxt)
        elif tok == "fault":
            if nxt == "slowheaders":
                slow = True
            elif fault is None and (
                nxt in _NAMED_FAULTS or (nxt.isdigit() and 400 <= int(nxt) <= 599)
            ):
                fault = nxt
    return Behaviour(delay, tools, thinking, fault, slow)


# --------------------------------------------------------------------------- reply plan


def _text_of(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list joined by spaces."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif part.get("type") == "tool_result":
                parts.append(_text_of(part.get("content")))
    return " ".join(p for p in parts if p)


@dataclass(slots=True)
class Plan:
    """The whole deterministic answer to one request, independent of wire format."""

    prompt_tokens: int
    words: list[str]  # text chunks, each with its leading whitespace
    truncated: bool
    calls: list[tuple[str, str, list[str]]]  # (tool name, arguments JSON, fragments)
    thinking: list[str]

    @property
    def text(self) -> str:
        return "".join(self.words)

    @property
    def completion_tokens(self) -> int:
        """One token per content-carrying chunk (text, thinking, argument fragment)."""
        return len(self.words) + len(self.thinking) + sum(len(c[2]) for c in self.calls)


def _tool_names(tools: Any) -> list[str]:
    """Names from OpenAI ``tools[].function.name`` or Anthropic ``tools[].name``."""
    names: list[str] = []
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
            if isinstance(name, str) and name:
                names.append(name)
    return names or list(DEFAULT_TOOL_NAMES)


def _split3(s: str) -> list[str]:
    """Split a string into three non-empty fragments (for strings of 3+ chars)."""
    a, b = len(s) // 3, 2 * len(s) // 3
    return [s[:a], s[a:b], s[b:]]


def make_plan(req: dict[str, Any], model: str, b: Behaviour, anthropic: bool) -> Plan:
    """Compute reply words / tool calls / token counts for a parsed request body."""
    messages = req.get("messages")
    if not isinstance(messages, list):
        messages = []
    prompt_words = len(_text_of(req.get("system")).split()) if anthropic else 0
    last_user = ""
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        text = _text_of(msg.get("content"))
        prompt_words += len(text.split())
        if msg.get("role") == "user":
            last_user = text
    thinking = _WORD_RE.findall(THINKING_TEXT) if (b.thinking and anthropic) else []
    if b.tools:
        names = _tool_names(req.get("tools"))
        calls = []
        for i, args in enumerate(TOOL_ARGUMENTS):
            js = orjson.dumps(args).decode()
            calls.append((names[i % len(names)], js, _split3(js)))
        return Plan(prompt_words, [], False, calls, thinking)
    words = _WORD_RE.findall(f"Hello from mock {model}! You said: {last_user}")
    limit = req.get("max_tokens")
    if limit is None and not anthropic:
        limit = req.get("max_completion_tokens")
    truncated = (
        isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words)
    )
    if truncated:
        words = words[:limit]
    return Plan(prompt_words, words, truncated, [], thinking)


# --------------------------------------------------------------------------- OpenAI format


def _openai_usage(plan: Plan) -> dict[str, Any]:
    ct = plan.completion_tokens
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": ct,
        "total_tokens": plan.prompt_tokens + ct,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _openai_finish(plan: Plan) -> str:
    if plan.calls:
        return "tool_calls"
    return "length" if plan.truncated else "stop"


def openai_body(plan: Plan, model: str, n: int) -> bytes:
    """A non-stream ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if plan.calls:
        message["tool_calls"] = [
            {
                "id": f"call_mock{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for i, (name, args, _) in enumerate(plan.calls)
        ]
    else:
        message["content"] = plan.text
    return orjson.dumps(
        {
            "id": f"chatcmpl-mock{n}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _openai_finish(plan),
                }
            ],
            "usage": _openai_usage(plan),
            "system_fingerprint": "fp_mock",
        }
    )


def openai_events(plan: Plan, model: str, n: int, include_usage: bool) -> list[bytes]:
    """The ``chat.completion.chunk`` SSE events of a streamed reply, ``[DONE]`` included."""
    head = orjson.dumps(
        {"id": f"chatcmpl-mock{n}", "object": "chat.completion.chunk", "created": CREATED,
         "model": model, "system_fingerprint": "fp_mock"}
    )[:-1] + b',"choices":[{"index":0,"delta":'
    tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        fin = b"null" if finish is None else b'"' + finish.encode() + b'"'
        return (b"data: " + head + orjson.dumps(delta)
                + b',"logprobs":null,"finish_reason":' + fin + b"}]" + tail)

    if plan.calls:
        events = [chunk({"role": "assistant", "content": None, "refusal": None})]
        for i, (name, _, frags) in enumerate(plan.calls):
            events.append(chunk({"tool_calls": [{
                "index": i, "id": f"call_mock{n}_{i}", "type": "function",
                "function": {"name": name, "arguments": ""}}]}))
            events.extend(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": f}}]})
                for f in frags
            )
    else:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events.extend(chunk({"content": w}) for w in plan.words)
    events.append(chunk({}, _openai_finish(plan)))
    if include_usage:
        usage = orjson.dumps(
            {"id": f"chatcmpl-mock{n}", "object": "chat.completion.chunk", "created": CREATED,
             "model": model, "system_fingerprint": "fp_mock", "choices": [],
             "usage": _openai_usage(plan)}
        )
        events.append(b"data: " + usage + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


@functools.lru_cache(maxsize=64)
def openai_error(status: int, message: str | None = None) -> bytes:
    """OpenAI error body ``{"error": {"message", "type", "param", "code"}}``."""
    etype, code = _OPENAI_ERRORS.get(
        status, ("invalid_request_error", "error") if status < 500 else ("server_error", "error")
    )
    msg = message or f"mock fault: HTTP {status}"
    return orjson.dumps({"error": {"message": msg, "type": etype, "param": None, "code": code}})


# --------------------------------------------------------------------------- Anthropic format


def _sse(name: bytes, obj: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


_PING = _sse(b"ping", {"type": "ping"})
_MESSAGE_STOP = _sse(b"message_stop", {"type": "message_stop"})


def _anthropic_stop(plan: Plan) -> str:
    if plan.calls:
        return "tool_use"
    return "max_tokens" if plan.truncated else "end_turn"


def _anthropic_usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def anthropic_body(plan: Plan, model: str, n: int) -> bytes:
    """A non-stream ``message`` object."""
    content: list[dict[str, Any]] = []
    if plan.thinking:
        content.append(
            {"type": "thinking", "thinking": "".join(plan.thinking),
             "signature": THINKING_SIGNATURE}
        )
    if plan.calls:
        content.extend(
            {"type": "tool_use", "id": f"toolu_mock{n}_{i}", "name": name,
             "input": orjson.loads(args)}
            for i, (name, args, _) in enumerate(plan.calls)
        )
    else:
        content.append({"type": "text", "text": plan.text})
    return orjson.dumps(
        {
            "id": f"msg_mock{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _anthropic_stop(plan),
            "stop_sequence": None,
            "usage": _anthropic_usage(plan, plan.completion_tokens),
        }
    )


def anthropic_events(plan: Plan, model: str, n: int) -> list[bytes]:
    """The full Anthropic SSE sequence: message_start ... ping ... message_stop."""
    events = [
        _sse(b"message_start", {"type": "message_start", "message": {
            "id": f"msg_mock{n}", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": _anthropic_usage(plan, 1)}})
    ]
    index = 0

    def start(block: dict[str, Any]) -> None:
        events.append(_sse(b"content_block_start",
                           {"type": "content_block_start", "index": index,
                            "content_block": block}))
        if index == 0:
            events.append(_PING)

    def delta(d: dict[str, Any]) -> None:
        events.append(_sse(b"content_block_delta",
                           {"type": "content_block_delta", "index": index, "delta": d}))

    def stop() -> None:
        events.append(_sse(b"content_block_stop", {"type": "content_block_stop", "index": index}))

    if plan.thinking:
        start({"type": "thinking", "thinking": "", "signature": ""})
        for w in plan.thinking:
            delta({"type": "thinking_delta", "thinking": w})
        delta({"type": "signature_delta", "signature": THINKING_SIGNATURE})
        stop()
        index += 1
    if plan.calls:
        for i, (name, _, frags) in enumerate(plan.calls):
            start({"type": "tool_use", "id": f"toolu_mock{n}_{i}", "name": name, "input": {}})
            delta({"type": "input_json_delta", "partial_json": ""})
            for f in frags:
                delta({"type": "input_json_delta", "partial_json": f})
            stop()
            index += 1
    else:
        start({"type": "text", "text": ""})
        for w in plan.words:
            delta({"type": "text_delta", "text": w})
        stop()
    events.append(_sse(b"message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": _anthropic_stop(plan), "stop_sequence": None},
        "usage": _anthropic_usage(plan, plan.completion_tokens)}))
    events.append(_MESSAGE_STOP)
    return events


@functools.lru_cache(maxsize=64)
def anthropic_error(status: int, message: str | None = None) -> bytes:
    """Anthropic error body ``{"type": "error", "error": {"type", "message"}}``."""
    etype = _ANTHROPIC_ERRORS.get(status, "invalid_request_error" if status < 500 else "api_error")
    msg = message or f"mock fault: HTTP {status}"
    return orjson.dumps(
        {"type": "error", "error": {"type": etype, "message": msg}, "request_id": "req_mock"}
    )


# --------------------------------------------------------------------------- request log


class RequestLog:
    """Bounded record of received requests, for tests to inspect what the gateway sent."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max(1, limit))
        self._ids = itertools.count(1)

    def record(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
        """Append and return a new entry (mutated later as the response progresses)."""
        entry: dict[str, Any] = {
            "id": next(self._ids),
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "started": time.time(),
            "finished": False,
            "disconnected": False,
            "status": None,
        }
        try:
            entry["body"] = request.body.decode("utf-8")
        except UnicodeDecodeError:
            entry["body_b64"] = base64.b64encode(request.body).decode("ascii")
        self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


@dataclass(slots=True)
class MockState:
    """Per-application settings shared by the handlers."""

    default_delay_ms: float
    log: RequestLog | None


# --------------------------------------------------------------------------- handlers


class _Base(tornado.web.RequestHandler):
    """Records the request, tracks disconnects, renders errors in the endpoint's format."""

    anthropic = False
    _entry: dict[str, Any] | None = None
    _disconnected = False
    _aborted = False  # response deliberately or accidentally left incomplete
    _done = False  # on_finish ran
    _close_waiter: asyncio.Future[None] | None = None

    def initialize(self, state: MockState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        self.clear_header("Server")

    def compute_etag(self) -> str | None:
        return None  # hashing every body would cost the benchmark for nothing

    def prepare(self) -> None:
        if self.state.log is not None:
            self._entry = self.state.log.record(self.request)

    def on_connection_close(self) -> None:
        if self._done:
            return
        self._disconnected = True
        if self._entry is not None and not self._aborted:
            self._entry["disconnected"] = True
        if self._close_waiter is not None and not self._close_waiter.done():
            self._close_waiter.set_result(None)

    def on_finish(self) -> None:
        self._done = True
        if self._entry is not None:
            self._entry["status"] = self.get_status()
            self._entry["finished"] = not (self._disconnected or self._aborted)

    def error_body(self, status: int, message: str | None = None) -> bytes:
        return (anthropic_error if self.anthropic else openai_error)(status, message)

    def send_api_error(self, status: int, message: str | None = None) -> None:
        self.set_status(status, _REASONS.get(status))
        if status == 429:
            self.set_header("Retry-After", "1")
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status, message))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status_code, tornado.httputil.responses.get(status_code)))


class _CompletionBase(_Base):
    """Shared request flow of the two completion endpoints; subclasses render formats."""

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def stream_error_event(self) -> bytes:
        raise NotImplementedError

    def _delay_s(self, b: Behaviour) -> float:
        if b.delay_ms is not None:
            return b.delay_ms / 1000.0
        hdr = self.request.headers.get("x-mock-delay-ms")
        if hdr:
            try:
                return max(0.0, float(hdr)) / 1000.0
            except ValueError:
                pass
        return self.state.default_delay_ms / 1000.0

    async def post(self) -> None:
        try:
            req = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            self.send_api_error(400, "request body is not valid JSON")
            return
        if not isinstance(req, dict):
            self.send_api_error(400, "request body must be a JSON object")
            return
        model = req.get("model")
        if not isinstance(model, str) or not model:
            model = "mock-model"
        b = parse_model(model)
        if b.slow_headers:
            await asyncio.sleep(SLOW_HEADERS_S)
            if self._disconnected:
                return
        status = b.fault_status
        if status is not None:
            self.send_api_error(status)
            return
        if b.fault == "hang":
            await self._hang()
            return
        if b.fault == "empty":
            self.set_header("Content-Type", "application/json")
            self.finish()
            return
        plan = make_plan(req, model, b, self.anthropic)
        n = next(_ids)
        delay = self._delay_s(b)
        if req.get("stream"):
            await self._stream(self.render_stream(plan, model, n, req), delay, b.fault)
        else:
            await self._respond(self.render(plan, model, n, req), delay, b.fault == "cut")

    async def _hang(self) -> None:
        """Send nothing until the client goes away."""
        self._close_waiter = asyncio.get_running_loop().create_future()
        if not self._disconnected:
            await self._close_waiter

    async def _respond(self, body: bytes, delay: float, cut: bool) -> None:
        if delay:
            await asyncio.sleep(delay)
            if self._disconnected:
                return
        self.set_header("Content-Type", "application/json")
        if not cut:
            self.finish(body)
            return
        self.set_header("Content-Length", str(len(body) + 100))
        self.write(body[: len(body) // 2])
        await self._cut()

    async def _stream(self, events: list[bytes], delay: float, fault: str | None) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        if fault in ("cut", "streamerror"):
            events = events[:2]
        for i, event in enumerate(events):
            if i and delay:
                await asyncio.sleep(delay)
            if self._disconnected:
                return
            self.write(event)
            try:
                await self.flush()
            except StreamClosedError:
                self._aborted = True
                return
        if fault == "cut":
            await self._cut()
        elif fault == "streamerror":
            self.write(self.stream_error_event())

    async def _cut(self) -> None:
        """Flush what is buffered, then drop the TCP connection mid-body."""
        self._aborted = True
        try:
            await self.flush()
        except StreamClosedError:
            return
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()


class ChatCompletionsHandler(_CompletionBase):
    """POST /v1/chat/completions in the OpenAI format."""

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        return openai_body(plan, model, n)

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        opts = req.get("stream_options")
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        return openai_events(plan, model, n, include_usage)

    def stream_error_event(self) -> bytes:
        return b"data: " + openai_error(500, "mock fault: error mid-stream") + b"\n\n"


class MessagesHandler(_CompletionBase):
    """POST /v1/messages in the Anthropic format."""

    anthropic = True

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        return anthropic_body(plan, model, n)

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        return anthropic_events(plan, model, n)

    def stream_error_event(self) -> bytes:
        return b"event: error\ndata: " + anthropic_error(529, "Overloaded") + b"\n\n"


_MODELS_BODY = orjson.dumps(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": CREATED, "owned_by": "mock"}
            for m in MODEL_IDS
        ],
    }
)


class ModelsHandler(_Base):
    """GET /v1/models in the OpenAI list shape."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(_MODELS_BODY)


class NotFoundHandler(_Base):
    """Any other path: 404 with an OpenAI error body (still recorded in the log)."""

    def prepare(self) -> None:
        super().prepare()
        self.send_api_error(404, f"Invalid URL ({self.request.method} {self.request.path})")


class MockRequestsHandler(tornado.web.RequestHandler):
    """GET lists recorded requests (oldest first); DELETE clears them."""

    def initialize(self, state: MockState) -> None:
        self.state = state

    def get(self) -> None:
        entries = self.state.log.entries() if self.state.log is not None else []
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(entries))

    def delete(self) -> None:
        if self.state.log is not None:
            self.state.log.clear()
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"cleared":true}')


class HealthHandler(tornado.web.RequestHandler):
    """Liveness probe for scripts waiting on the mock."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish(b"OK")


def make_app(
    default_delay_ms: float = 0,
    *,
    record_requests: bool = True,
    log_limit: int = DEFAULT_LOG_LIMIT,
) -> tornado.web.Application:
    """Build the mock application; ``app.settings["mock_state"].log`` is its RequestLog."""
    state = MockState(
        default_delay_ms=float(default_delay_ms),
        log=RequestLog(log_limit) if record_requests else None,
    )
    kw = {"state": state}
    return tornado.web.Application(
        [
            (r"/v1/chat/completions", ChatCompletionsHandler, kw),
            (r"/v1/messages", MessagesHandler, kw),
            (r"/v1/models", ModelsHandler, kw),
            (r"/_mock/requests", MockRequestsHandler, kw),
            (r"/_mock/health", HealthHandler),
            (r"/.*", NotFoundHandler, kw),
        ],
        mock_state=state,
        log_function=lambda _handler: None,  # no per-request access log on the hot path
    )


# --------------------------------------------------------------------------- CLI


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.mock_provider", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="default delay between stream events")
    p.add_argument("--no-log", action="store_true",
                   help="do not record requests (for benchmarks)")
    p.add_argument("--log-limit", type=int, default=DEFAULT_LOG_LIMIT,
                   help="how many recent requests /_mock/requests keeps")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    app = make_app(args.delay_ms, record_requests=not args.no_log, log_limit=args.log_limit)
    sockets = tornado.netutil.bind_sockets(args.port, args.host)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print(f"mock provider listening on {args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.mock_provider``."""
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
