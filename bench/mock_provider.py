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
* ``big-<KiB>``   the reply text is that many KiB of ``filler_text``, sent in pieces of
  ``piece-<KiB>`` (default 16; one stream event per piece), for tests of large answers.
* ``fault-<status>`` (400..599, e.g. 429 with ``Retry-After: 1``; 401 quotes the key it
  was sent, split across body chunks), ``fault-hang``,
  ``fault-cut``, ``fault-empty``, ``fault-slowheaders``, ``fault-streamerror``.
  An OpenAI ``fault-400`` is a context-length refusal (``code: context_length_exceeded``,
  ``param: messages``); an Anthropic ``fault-402`` is a ``billing_error``.
* ``echokey``     a chat fault's error message quotes the request's API key, as some
  providers' do: what a gateway must never pass on.

``/v1/messages`` refuses (400, as Anthropic does) thinking enabled while the final
assistant turn calls tools without opening with its thinking block. A structured-output
request (``output_config.format`` / ``response_format`` json_schema) is answered with a
small JSON value that its schema accepts.

Besides ``/v1/chat/completions``, ``/v1/messages`` and ``/v1/models`` it serves the
OpenAI extension endpoints so each can be tested end to end through the gateway:
``/v1/embeddings``, ``/v1/images/generations``, ``/v1/audio/{transcriptions,translations,
speech}``, ``/v1/moderations``, ``/v1/rerank`` (Cohere/Jina shape), ``/v1/responses[/{id}]``,
``/v1/a2a`` (JSON-RPC echo), ``/v1/files[/{id}[/content]]``, ``/v1/batches[/{id}[/cancel]]``
and ``/v1/models/{id}``.  Files, batches and responses live in memory.  The model-name
selectors above apply to every endpoint whose request has a ``model`` (JSON or form field).
Every ``/v1`` answer carries ``x-request-id: req_mock_<n>`` and ``Set-Cookie: mock_session=1``;
with request header ``x-mock-hop-header: <name>``, also ``<name>: 1`` named in its ``Connection``
header (a hop-by-hop header a proxy must not relay).

Control API: ``GET|DELETE /_mock/requests``, ``GET /_mock/health``, ``GET|POST|DELETE
/_mock/config`` (``{"models_fault": "500"|"hang"|"slow-<ms>"|null, "models": [ids]|null}``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import itertools
import re
import signal
import struct
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web
from tornado.iostream import StreamClosedError

__all__ = [
    "Behaviour",
    "RequestLog",
    "embedding_vector",
    "filler_text",
    "image_png",
    "make_app",
    "make_server",
    "main",
    "parse_model",
    "schema_instance",
    "speech_bytes",
]

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
# Uploads (audio, files) of at least 256 MiB plus multipart overhead must get through.
MAX_BODY_BYTES = 512 * 1024 * 1024
LOG_BODY_LIMIT = 64 * 1024  # larger bodies are logged as sha256 + size only
EMBEDDING_DIMS = 8
SPEECH_DEFAULT_BYTES = 512 * 1024
SPEECH_CHUNK_BYTES = 64 * 1024
STORE_LIMIT = 10_000  # per in-memory store (responses, files, batches)
COOKIE = "mock_session=1; Path=/"

# Words with their leading whitespace, so "".join(chunks) == reply text exactly.
_WORD_RE = re.compile(r"\s*\S+")
_ids = itertools.count(1)
_request_ids = itertools.count(1)

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
    402: "billing_error",
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
    echo_key: bool = False  # a fault's message quotes the credential the request presented
    big_kib: int | None = None  # reply text of this many KiB of filler_text
    piece_kib: int = 16  # ... in pieces (stream events) of this many KiB

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
    big: int | None = None
    piece = 16
    tools = thinking = slow = echo = False
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok == "big" and nxt.isdigit():
            big = int(nxt)
        elif tok == "piece" and nxt.isdigit() and int(nxt) > 0:
            piece = int(nxt)
        elif tok == "tools":
            tools = True
        elif tok == "thinking":
            thinking = True
        elif tok == "echokey":
            echo = True
        elif tok == "delay" and delay is None and nxt.isdigit():
            delay = float(nxt)
        elif tok == "fault":
            if nxt == "slowheaders":
                slow = True
            elif fault is None and (
                nxt in _NAMED_FAULTS or (nxt.isdigit() and 400 <= int(nxt) <= 599)
            ):
                fault = nxt
    return Behaviour(delay, tools, thinking, fault, slow, echo, big, piece)


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


def filler_text(size: int) -> str:
    """``size`` characters of hex text for ``big-<KiB>`` replies: cheap to make, and any piece
    lost, repeated or reordered on the way shows. Public so a test can check what it got."""
    return hashlib.shake_256(b"mock filler").hexdigest((size + 1) // 2)[:size]


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
    if b.big_kib is not None:
        text, piece = filler_text(b.big_kib * 1024), b.piece_kib * 1024
        pieces = [text[i:i + piece] for i in range(0, len(text), piece)]
        return Plan(prompt_words, pieces, False, [], thinking)
    schema = _output_schema(req, anthropic)
    reply = f"Hello from mock {model}! You said: {last_user}" if schema is None else (
        orjson.dumps(schema_instance(schema), option=orjson.OPT_INDENT_2).decode())
    words = _WORD_RE.findall(reply)
    limit = req.get("max_tokens")
    if limit is None and not anthropic:
        limit = req.get("max_completion_tokens")
    truncated = (
        isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words)
    )
    if truncated:
        words = words[:limit]
    return Plan(prompt_words, words, truncated, [], thinking)


def _output_schema(req: dict[str, Any], anthropic: bool) -> dict[str, Any] | None:
    """The JSON schema a structured-output request asks the answer to follow, if any:
    Anthropic's ``output_config.format``, OpenAI's ``response_format`` json_schema."""
    if anthropic:
        config = req.get("output_config")
        spec = config.get("format") if isinstance(config, dict) else None
    else:
        fmt = req.get("response_format")
        spec = fmt.get("json_schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def schema_instance(schema: Any) -> Any:
    """A small value valid under ``schema`` (the subset structured outputs allow, local
    ``$ref`` aside): the first enum/const/alternative, required properties only."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_instance(schema[key][0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else list(properties)
        return {name: schema_instance(properties.get(name)) for name in required if isinstance(name, str)}
    return {"array": [], "string": "mock", "integer": 0, "number": 0, "boolean": False}.get(kind)


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
    param = None
    if message is None and status == 400:  # the fault clients branch on most: a prompt too long
        code, param = "context_length_exceeded", "messages"
    msg = message or f"mock fault: HTTP {status}"
    return orjson.dumps({"error": {"message": msg, "type": etype, "param": param, "code": code}})


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


# --------------------------------------------------------------------------- extension formats


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "mock"}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_in(x: Any, lo: int, hi: int) -> bool:
    return _is_int(x) and lo <= x <= hi


def embedding_vector(item: str | list[int], dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic embedding of one input: ``dims`` multiples of 1/128 in [-1, 1).

    Multiples of 1/128 are exact in float32, so the ``float`` and ``base64`` (little-endian
    float32) encodings of one input decode to identical lists.
    """
    key = item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))
    return [(b - 128) / 128 for b in hashlib.shake_256(key.encode()).digest(dims)]


def _embedding_inputs(inp: Any) -> list[str | list[int]] | None:
    """``input`` as a list of strings / token arrays; None when it is neither."""
    if isinstance(inp, str):
        return [inp]
    if not isinstance(inp, list) or not inp:
        return None
    if all(_is_int(t) for t in inp):
        return [inp]
    items: list[str | list[int]] = []
    for x in inp:
        if isinstance(x, str) or (isinstance(x, list) and x and all(_is_int(t) for t in x)):
            items.append(x)
        else:
            return None
    return items


def embeddings_body(inputs: list[str | list[int]], model: str, dims: int, b64: bool) -> dict[str, Any]:
    """The ``list`` of ``embedding`` objects; tokens are words (or token-array lengths)."""
    data: list[dict[str, Any]] = []
    tokens = 0
    for i, item in enumerate(inputs):
        vec = embedding_vector(item, dims)
        tokens += max(1, len(item.split())) if isinstance(item, str) else len(item)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def image_png(prompt: str, index: int = 0) -> bytes:
    """A valid 1x1 PNG whose colour derives from the prompt and the image's index in ``n``."""
    rgb = hashlib.sha256(f"{index}\0{prompt}".encode()).digest()[:3]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + rgb)) + chunk(b"IEND", b""))


def speech_bytes(text: str, voice: str, size: int) -> bytes:
    """The mock's "audio" for ``text`` spoken by ``voice``: ``size`` SHAKE-256 bytes.

    Public so a test can compute the exact body a speech request must come back with.
    """
    return hashlib.shake_256(f"{voice}\0{text}".encode()).digest(size)


SPEECH_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
FLAGGED_CATEGORIES = frozenset({"harassment", "self-harm"})


def moderation_result(text: str) -> dict[str, Any]:
    """One ``results[]`` entry: flagged (harassment, self-harm) iff the text contains "harm"."""
    flagged = "harm" in text.lower()
    cats = {c: flagged and c in FLAGGED_CATEGORIES for c in MODERATION_CATEGORIES}
    return {
        "flagged": flagged,
        "categories": cats,
        "category_scores": {c: 0.99 if cats[c] else 0.001 for c in MODERATION_CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
    }


def _moderation_texts(inp: Any) -> list[str] | None:
    """One text per result: a string, each of a list of strings, or one multimodal input."""
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and inp:
        if all(isinstance(x, str) for x in inp):
            return inp
        if all(isinstance(x, dict) for x in inp):
            return [_text_of(inp)]
    return None


_TERM_RE = re.compile(r"\w+")


def rerank_score(query: str, document: str) -> float:
    """Share of the query's distinct words found in the document (0.0 .. 1.0)."""
    q = set(_TERM_RE.findall(query.lower()))
    if not q:
        return 0.0
    return len(q & set(_TERM_RE.findall(document.lower()))) / len(q)


def _doc_text(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return doc["text"]
    return None


# Responses API


def _responses_messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat-style messages from ``instructions`` + ``input`` (string or item list)."""
    msgs: list[dict[str, Any]] = []
    instructions = req.get("instructions")
    if isinstance(instructions, str) and instructions:
        msgs.append({"role": "system", "content": instructions})
    inp = req.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, str):
                msgs.append({"role": "user", "content": item})
            elif isinstance(item, dict) and "role" in item:
                msgs.append({"role": item["role"], "content": item.get("content")})
            elif isinstance(item, dict) and item.get("type") == "function_call_output":
                msgs.append({"role": "tool", "content": item.get("output")})
    return msgs


def responses_plan(req: dict[str, Any], model: str, b: Behaviour) -> Plan:
    """The same deterministic plan as chat, from a Responses request."""
    return make_plan({"messages": _responses_messages(req), "tools": req.get("tools"),
                      "max_tokens": req.get("max_output_tokens")}, model, b, anthropic=False)


def _message_item(n: int, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [
        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": f"msg_mock{n}", "status": status, "role": "assistant",
            "content": content}


def _call_item(n: int, i: int, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_mock{n}_{i}", "call_id": f"call_mock{n}_{i}",
            "name": name, "arguments": arguments, "status": status}


def response_object(plan: Plan, model: str, n: int, req: dict[str, Any], done: bool) -> dict[str, Any]:
    """A ``response`` object: in progress (empty output) or final (output + usage)."""
    status = ("incomplete" if plan.truncated else "completed") if done else "in_progress"
    output: list[dict[str, Any]] = []
    usage = None
    if done:
        if plan.calls:
            output = [_call_item(n, i, name, args, "completed")
                      for i, (name, args, _) in enumerate(plan.calls)]
        else:
            output = [_message_item(n, status, plan.text)]
        ct = plan.completion_tokens
        usage = {"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": ct, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": plan.prompt_tokens + ct}
    tools = req.get("tools")
    return {
        "id": f"resp_mock{n}",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "completed_at": CREATED if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "metadata": req.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": req.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": req.get("store") is not False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
    }


def responses_events(plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
    """The Responses SSE sequence (``event:`` + ``data:`` with ``type`` and ``sequence_number``)."""
    events: list[bytes] = []

    def ev(etype: str, **payload: Any) -> None:
        data = orjson.dumps({"type": etype, "sequence_number": len(events), **payload})
        events.append(b"event: " + etype.encode() + b"\ndata: " + data + b"\n\n")

    pending = response_object(plan, model, n, req, done=False)
    ev("response.created", response=pending)
    ev("response.in_progress", response=pending)
    if plan.calls:
        for i, (name, args, frags) in enumerate(plan.calls):
            loc = {"item_id": f"fc_mock{n}_{i}", "output_index": i}
            ev("response.output_item.added", output_index=i,
               item=_call_item(n, i, name, "", "in_progress"))
            for f in frags:
                ev("response.function_call_arguments.delta", **loc, delta=f)
            ev("response.function_call_arguments.done", **loc, name=name, arguments=args)
            ev("response.output_item.done", output_index=i,
               item=_call_item(n, i, name, args, "completed"))
    else:
        loc = {"item_id": f"msg_mock{n}", "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        ev("response.output_item.added", output_index=0, item=_message_item(n, "in_progress", None))
        ev("response.content_part.added", **loc, part=part)
        for w in plan.words:
            ev("response.output_text.delta", **loc, delta=w, logprobs=[])
        ev("response.output_text.done", **loc, text=plan.text, logprobs=[])
        ev("response.content_part.done", **loc, part={**part, "text": plan.text})
        ev("response.output_item.done", output_index=0,
           item=_message_item(n, "incomplete" if plan.truncated else "completed", plan.text))
    final = response_object(plan, model, n, req, done=True)
    ev("response.incomplete" if plan.truncated else "response.completed", response=final)
    return events


# multipart uploads


def _boundary(content_type: str) -> str | None:
    """The ``boundary`` parameter of a multipart Content-Type, as sent (quotes removed)."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip()
            return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return None


def upload_info(request: tornado.httputil.HTTPServerRequest) -> tuple[dict[str, Any], bytes] | None:
    """What a multipart upload carried (``x_mock``) and the ``file`` part; None if no file.

    Tornado has already parsed the form (``request.files`` / ``body_arguments``); a ``file``
    part sent without a filename lands among the plain fields and still counts.
    """
    fields: dict[str, Any] = {}
    for name, values in request.body_arguments.items():
        texts = [v.decode("utf-8", "replace") for v in values]
        fields[name] = texts[0] if len(texts) == 1 else texts
    parts = request.files.get("file")
    if parts:
        filename: str | None = parts[0].filename
        content, file_type = parts[0].body, parts[0].content_type
    elif "file" in request.body_arguments:
        filename, file_type = None, None
        content = request.body_arguments["file"][0]
        del fields["file"]
    else:
        return None
    ctype = request.headers.get("Content-Type", "")
    return {
        "file_sha256": hashlib.sha256(content).hexdigest(),
        "file_bytes": len(content),
        "filename": filename,
        "file_content_type": file_type,
        "fields": fields,
        "boundary": _boundary(ctype),
        "content_type": ctype,
        "body_bytes": len(request.body),
    }, content



# --------------------------------------------------------------------------- request log


class RequestLog:
    """Bounded record of received requests, for tests to inspect what the gateway sent."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max(1, limit))
        self._ids = itertools.count(1)

    def record(
        self, request: tornado.httputil.HTTPServerRequest, request_id: str | None = None
    ) -> dict[str, Any]:
        """Append and return a new entry (mutated later as the response progresses).

        Bodies over LOG_BODY_LIMIT are kept as ``body_sha256`` only, so a test can prove a
        large upload arrived byte-identical without the log holding (or serving) it.
        """
        body = request.body
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
            "body_size": len(body),
        }
        if request_id is not None:
            entry["request_id"] = request_id
        if len(body) > LOG_BODY_LIMIT:
            entry["body_sha256"] = hashlib.sha256(body).hexdigest()
        else:
            try:
                entry["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                entry["body_b64"] = base64.b64encode(body).decode("ascii")
        self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


class BoundedStore(OrderedDict[str, Any]):
    """Insertion-ordered id -> object map that forgets its oldest entries past a limit."""

    def __init__(self, limit: int = STORE_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        while len(self) > self.limit:
            self.popitem(last=False)


_MODELS_FAULT_RE = re.compile(r"hang|slow-\d+|[45]\d\d")


@dataclass(slots=True)
class MockState:
    """Per-application settings and in-memory stores shared by the handlers."""

    default_delay_ms: float
    log: RequestLog | None
    models_fault: str | None = None  # catalog fault set through /_mock/config
    model_ids: tuple[str, ...] = MODEL_IDS
    models_body: bytes = b""
    responses: BoundedStore = field(default_factory=BoundedStore)
    files: BoundedStore = field(default_factory=BoundedStore)  # id -> (file object, bytes)
    batches: BoundedStore = field(default_factory=BoundedStore)

    def __post_init__(self) -> None:
        self.set_models(MODEL_IDS)

    def set_models(self, ids: tuple[str, ...]) -> None:
        """Change the catalog and pre-render GET /v1/models (served on every catalog refresh)."""
        self.model_ids = ids
        self.models_body = orjson.dumps(
            {"object": "list", "data": [_model_object(m) for m in ids]}
        )

    def config(self) -> dict[str, Any]:
        return {"models_fault": self.models_fault, "models": list(self.model_ids)}


# --------------------------------------------------------------------------- handlers


class _Base(tornado.web.RequestHandler):
    """Records the request, tracks disconnects, renders errors in the endpoint's format."""

    anthropic = False
    _entry: dict[str, Any] | None = None
    _disconnected = False
    _aborted = False  # response deliberately or accidentally left incomplete
    _done = False  # on_finish ran
    _close_waiter: asyncio.Future[None] | None = None
    _request_id: str | None = None

    def initialize(self, state: MockState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        if self.request.path.startswith("/v1/"):
            # Gateway tests check which upstream headers are relayed; keep the id stable
            # across clear() (send_error calls it again).
            if self._request_id is None:
                self._request_id = f"req_mock_{next(_request_ids)}"
            self.set_header("x-request-id", self._request_id)
            self.set_header("Set-Cookie", COOKIE)
            hop = self.request.headers.get("x-mock-hop-header")
            if hop:
                self.set_header("Connection", f"keep-alive, {hop}")
                self.set_header(hop, "1")

    def compute_etag(self) -> str | None:
        return None  # hashing every body would cost the benchmark for nothing

    def prepare(self) -> None:
        if self.state.log is not None:
            self._entry = self.state.log.record(self.request, self._request_id)

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

    async def send_fault(self, status: int) -> None:
        """A ``fault-<status>`` answer. 401 quotes the key it was sent, as a careless provider
        would, in the body and in ``WWW-Authenticate``, and sends the body in three chunks
        that split the key, so a relay must scrub across chunk boundaries."""
        key = self.presented_key()
        if status != 401 or not key:
            self.send_api_error(status)
            return
        self.set_status(401, _REASONS.get(401))
        self.set_header("Content-Type", "application/json")
        self.set_header("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{key}"')
        body = self.error_body(401, f"Incorrect API key provided: {key}.")
        middle = body.index(key.encode()) + len(key) // 2
        for piece in (body[: middle - 3], body[middle - 3 : middle + 3]):
            self.write(piece)
            try:
                await self.flush()
            except StreamClosedError:
                return
            await asyncio.sleep(0.02)
        self.finish(body[middle + 3 :])

    def presented_key(self) -> str:
        """The credential the caller sent (Bearer token or x-api-key), or ''."""
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.request.headers.get("x-api-key", "").strip()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado rejects an unparsable form body before prepare(): still log the request, and
        # say why (e.g. "Invalid body: ... no final boundary found") instead of "Bad Request".
        if self._entry is None and self.state.log is not None:
            self._entry = self.state.log.record(self.request, self._request_id)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = getattr(exc, "log_message", None) or tornado.httputil.responses.get(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(self.error_body(status_code, reason))

    def stream_error_event(self) -> bytes:
        raise NotImplementedError

    # ---- shared by every model-bearing endpoint

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

    def json_body(self) -> dict[str, Any] | None:
        """The request's JSON object, or None after answering 400."""
        try:
            req = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            self.send_api_error(400, "request body is not valid JSON")
            return None
        if not isinstance(req, dict):
            self.send_api_error(400, "request body must be a JSON object")
            return None
        return req

    async def gate(self, model: Any) -> Behaviour | None:
        """Apply the model name's fault selectors; None when they already answered."""
        b = parse_model(model if isinstance(model, str) else "")
        if b.slow_headers:
            await asyncio.sleep(SLOW_HEADERS_S)
            if self._disconnected:
                return None
        status = b.fault_status
        if status is not None:
            await self.send_fault(status)
            return None
        if b.fault == "hang":
            await self._hang()
            return None
        if b.fault == "empty":
            self.set_header("Content-Type", "application/json")
            self.finish()
            return None
        return b

    async def reply(self, obj: Any, b: Behaviour) -> None:
        """Answer a JSON object, honouring the delay and ``fault-cut`` selectors."""
        await self._respond(orjson.dumps(obj), self._delay_s(b), b.fault == "cut")

    def not_found(self, kind: str, ident: str, param: str = "id") -> None:
        """404 in the OpenAI error shape the real API uses for unknown object ids."""
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": {
            "message": f"No such {kind}: '{ident}'", "type": "invalid_request_error",
            "param": param, "code": "not_found"}}))

    async def _hang(self) -> None:
        """Send nothing until the client goes away."""
        self._close_waiter = asyncio.get_running_loop().create_future()
        if not self._disconnected:
            await self._close_waiter

    async def _respond(self, body: bytes, delay: float, cut: bool,
                       content_type: str = "application/json") -> None:
        if delay:
            await asyncio.sleep(delay)
            if self._disconnected:
                return
        self.set_header("Content-Type", content_type)
        if not cut:
            self.finish(body)
            return
        self.set_header("Content-Length", str(len(body) + 100))
        self.write(body[: len(body) // 2])
        await self._cut()

    async def _stream(self, events: list[bytes], delay: float, fault: str | None,
                      content_type: str = "text/event-stream") -> None:
        """Write each piece with a flush (chunked encoding), faults cutting after two."""
        self.set_header("Content-Type", content_type)
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


class _CompletionBase(_Base):
    """Shared request flow of the two completion endpoints; subclasses render formats."""

    def render(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def render_stream(self, plan: Plan, model: str, n: int, req: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def refusal(self, req: dict[str, Any]) -> str | None:
        """Why the real API would refuse this well-formed request, if it would."""
        return None

    async def post(self) -> None:
        # Kept inline rather than via json_body()/gate(): this is the benchmark's hot path.
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
            if b.echo_key:
                self.send_api_error(status, f"mock fault: HTTP {status} for key {self.presented_key()}")
            else:
                await self.send_fault(status)
            return
        if b.fault == "hang":
            await self._hang()
            return
        if b.fault == "empty":
            self.set_header("Content-Type", "application/json")
            self.finish()
            return
        refusal = self.refusal(req)
        if refusal is not None:
            self.send_api_error(400, refusal)
            return
        plan = make_plan(req, model, b, self.anthropic)
        n = next(_ids)
        delay = self._delay_s(b)
        if req.get("stream"):
            await self._stream(self.render_stream(plan, model, n, req), delay, b.fault)
        else:
            await self._respond(self.render(plan, model, n, req), delay, b.fault == "cut")


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

    def refusal(self, req: dict[str, Any]) -> str | None:
        """Anthropic's rule for thinking in a tool loop: the final assistant turn, when it
        calls tools, must open with its thinking (or redacted_thinking) block."""
        thinking = req.get("thinking")
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
            return None
        messages = req.get("messages") if isinstance(req.get("messages"), list) else []
        for i in range(len(messages) - 1, -1, -1):
            turn = messages[i]
            if not isinstance(turn, dict) or turn.get("role") != "assistant":
                continue
            blocks = turn.get("content") if isinstance(turn.get("content"), list) else []
            kinds = [b.get("type") for b in blocks if isinstance(b, dict)]
            if "tool_use" in kinds and kinds[0] not in ("thinking", "redacted_thinking"):
                return (f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                        f"found `{kinds[0]}`. When `thinking` is enabled, a final `assistant` message "
                        "must start with a thinking block")
            return None
        return None

    def stream_error_event(self) -> bytes:
        return b"event: error\ndata: " + anthropic_error(529, "Overloaded") + b"\n\n"


class CountTokensHandler(_Base):
    """POST /v1/messages/count_tokens (Anthropic): whitespace words of system and messages."""

    anthropic = True

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        words = len(orjson.dumps([req.get("system"), req.get("messages")]).split())
        await self.reply({"input_tokens": words}, b)


def _model_name(req: dict[str, Any]) -> str:
    model = req.get("model")
    return model if isinstance(model, str) and model else "mock-model"


class ModelsHandler(_Base):
    """GET /v1/models in the OpenAI list shape, subject to the /_mock/config catalog fault."""

    async def get(self) -> None:
        fault = self.state.models_fault
        if fault is not None:
            if fault == "hang":
                await self._hang()
                return
            if not fault.startswith("slow-"):
                self.send_api_error(int(fault))
                return
            await asyncio.sleep(int(fault[5:]) / 1000.0)
            if self._disconnected:
                return
        self.set_header("Content-Type", "application/json")
        self.finish(self.state.models_body)


class ModelHandler(_Base):
    """GET /v1/models/{id}: any id exists (use ``fault-404`` in the id for a miss)."""

    async def get(self, model_id: str) -> None:
        b = await self.gate(model_id)
        if b is not None:
            await self.reply(_model_object(model_id), b)


class EmbeddingsHandler(_Base):
    """POST /v1/embeddings: ``float`` lists or ``base64`` float32 (what the SDK asks for)."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        inputs = _embedding_inputs(req.get("input"))
        if inputs is None:
            self.send_api_error(400, "'input' must be a string, strings, or token arrays")
            return
        fmt = req.get("encoding_format")
        if fmt not in (None, "float", "base64"):
            self.send_api_error(400, "'encoding_format' must be 'float' or 'base64'")
            return
        dims = req.get("dimensions")
        dims = dims if _int_in(dims, 1, 4096) else EMBEDDING_DIMS
        await self.reply(embeddings_body(inputs, _model_name(req), dims, fmt == "base64"), b)


class ImagesHandler(_Base):
    """POST /v1/images/generations: ``n`` 1x1 PNGs as ``b64_json`` (default) or ``url``."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        prompt, n = req.get("prompt"), req.get("n", 1)
        fmt = req.get("response_format") or "b64_json"
        if not isinstance(prompt, str) or not prompt:
            self.send_api_error(400, "'prompt' is required")
            return
        if not _int_in(n, 1, 10) or fmt not in ("b64_json", "url"):
            self.send_api_error(400, "'n' must be 1..10 and 'response_format' b64_json or url")
            return
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        data = [
            {"b64_json": base64.b64encode(image_png(prompt, i)).decode(), "revised_prompt": prompt}
            if fmt == "b64_json"
            else {"url": f"https://images.mock.invalid/{digest}/{i}.png", "revised_prompt": prompt}
            for i in range(n)
        ]
        words = len(prompt.split())
        await self.reply({
            "created": CREATED, "data": data,
            "usage": {"input_tokens": words, "output_tokens": 16 * n, "total_tokens": words + 16 * n,
                      "input_tokens_details": {"image_tokens": 0, "text_tokens": words}},
        }, b)


class AudioTextHandler(_Base):
    """POST /v1/audio/transcriptions and /translations (multipart), echoing what arrived.

    ``x_mock`` (and headers ``x-mock-file-sha256`` / ``x-mock-file-bytes``) let a test prove
    the gateway forwarded an upload byte-identical, boundary included.
    """

    def initialize(self, state: MockState, task: str = "transcribe") -> None:  # type: ignore[override]
        self.state = state
        self.task = task

    async def post(self) -> None:
        if not self.request.headers.get("Content-Type", "").startswith("multipart/form-data"):
            self.send_api_error(400, "expected a multipart/form-data body")
            return
        upload = upload_info(self.request)
        if upload is None:
            self.send_api_error(400, "'file' is required")
            return
        info, _ = upload
        fields = info["fields"]
        if (b := await self.gate(fields.get("model"))) is None:
            return
        size = info["file_bytes"]
        verb = "transcribed" if self.task == "transcribe" else "translated"
        text = f"{verb} {size} bytes"
        self.set_header("x-mock-file-sha256", info["file_sha256"])
        self.set_header("x-mock-file-bytes", str(size))
        fmt = fields.get("response_format") or "json"
        delay, cut = self._delay_s(b), b.fault == "cut"
        if fmt in ("text", "srt", "vtt"):
            body = {"text": text + "\n",
                    "srt": f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n",
                    "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n"}[fmt]
            await self._respond(body.encode(), delay, cut, "text/plain; charset=utf-8")
            return
        seconds = round(size / 32000, 3)  # as if 16 kHz 16-bit mono
        obj: dict[str, Any] = {"text": text}
        if fmt == "verbose_json":
            obj = {"task": self.task, "language": "english", "duration": seconds, "text": text,
                   "segments": []}
        obj["usage"] = {"type": "duration", "seconds": seconds}
        obj["x_mock"] = info
        await self._respond(orjson.dumps(obj), delay, cut)


class SpeechHandler(_Base):
    """POST /v1/audio/speech: ``speech_bytes(input, voice, size)`` in 64 KiB flushed chunks.

    ``size`` is 512 KiB unless the body has ``"x_mock_bytes": N``; ``stream_format: "sse"``
    sends the same bytes as base64 ``speech.audio.delta`` events.
    """

    _sse = False

    def stream_error_event(self) -> bytes:
        if not self._sse:
            return b""
        return b"data: " + orjson.dumps(
            {"type": "error", "error": {"message": "mock fault: error mid-stream",
                                        "type": "server_error"}}) + b"\n\n"

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        text, voice = req.get("input"), req.get("voice", "alloy")
        if isinstance(voice, dict):
            voice = voice.get("id")
        fmt = req.get("response_format") or "mp3"
        size = req.get("x_mock_bytes", SPEECH_DEFAULT_BYTES)
        if not isinstance(text, str) or not isinstance(voice, str):
            self.send_api_error(400, "'input' and 'voice' are required strings")
            return
        if fmt not in SPEECH_TYPES or not _int_in(size, 0, MAX_BODY_BYTES):
            self.send_api_error(400, f"unsupported response_format {fmt!r} or x_mock_bytes")
            return
        audio = speech_bytes(text, voice, size)
        chunks = [audio[i:i + SPEECH_CHUNK_BYTES] for i in range(0, len(audio), SPEECH_CHUNK_BYTES)]
        if req.get("stream_format") == "sse":
            self._sse = True
            words = len(text.split())
            events = [b"data: " + orjson.dumps(
                {"type": "speech.audio.delta", "audio": base64.b64encode(c).decode()}) + b"\n\n"
                for c in chunks]
            events.append(b"data: " + orjson.dumps({"type": "speech.audio.done", "usage": {
                "input_tokens": words, "output_tokens": len(chunks),
                "total_tokens": words + len(chunks)}}) + b"\n\n")
            await self._stream(events, self._delay_s(b), b.fault)
            return
        await self._stream(chunks, self._delay_s(b), b.fault, SPEECH_TYPES[fmt])


class ModerationsHandler(_Base):
    """POST /v1/moderations: one result per input; flagged iff the text contains "harm"."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        texts = _moderation_texts(req.get("input"))
        if texts is None:
            self.send_api_error(400, "'input' must be a string, strings, or content parts")
            return
        model = req.get("model") if isinstance(req.get("model"), str) else "omni-moderation-latest"
        await self.reply({"id": f"modr-mock{next(_ids)}", "model": model,
                          "results": [moderation_result(t) for t in texts]}, b)


class RerankHandler(_Base):
    """POST /v1/rerank (Cohere/Jina): results by word-overlap score, then document index."""

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        query, docs = req.get("query"), req.get("documents")
        texts = [_doc_text(d) for d in docs] if isinstance(docs, list) else []
        if not isinstance(query, str) or not texts or any(t is None for t in texts):
            self.send_api_error(400, "'query' (string) and 'documents' (strings or {text}) required")
            return
        top_n = req.get("top_n")
        if top_n is not None and not _int_in(top_n, 1, 1_000_000):
            self.send_api_error(400, "'top_n' must be a positive integer")
            return
        scored = sorted(((rerank_score(query, t), i) for i, t in enumerate(texts)),  # type: ignore[arg-type]
                        key=lambda s: (-s[0], s[1]))
        results: list[dict[str, Any]] = []
        for score, i in scored[:top_n]:
            result: dict[str, Any] = {"index": i, "relevance_score": score}
            if req.get("return_documents"):
                result["document"] = {"text": texts[i]}
            results.append(result)
        tokens = len(query.split()) + sum(len(t.split()) for t in texts)  # type: ignore[union-attr]
        await self.reply({
            "id": f"rerank-mock{next(_ids)}", "model": _model_name(req), "results": results,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            "usage": {"total_tokens": tokens},
        }, b)


class ResponsesHandler(_Base):
    """POST /v1/responses: a ``response`` object, or its SSE events with ``stream: true``."""

    def stream_error_event(self) -> bytes:
        return b"event: error\ndata: " + orjson.dumps({
            "type": "error", "code": "server_error", "message": "mock fault: error mid-stream",
            "param": None, "sequence_number": 2}) + b"\n\n"

    async def post(self) -> None:
        req = self.json_body()
        if req is None or (b := await self.gate(req.get("model"))) is None:
            return
        model = _model_name(req)
        plan = responses_plan(req, model, b)
        n = next(_ids)
        final = response_object(plan, model, n, req, done=True)
        if final["store"]:
            self.state.responses.put(final["id"], final)
        if req.get("stream"):
            await self._stream(responses_events(plan, model, n, req), self._delay_s(b), b.fault)
        else:
            await self.reply(final, b)


class ResponseHandler(_Base):
    """GET / DELETE /v1/responses/{id} on the in-memory store."""

    def get(self, rid: str) -> None:
        obj = self.state.responses.get(rid)
        if obj is None:
            self.not_found("response", rid, "response_id")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(obj))

    def delete(self, rid: str) -> None:
        if self.state.responses.pop(rid, None) is None:
            self.not_found("response", rid, "response_id")
            return
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"id": rid, "object": "response", "deleted": True}))


def _rpc_reply(msg: Any) -> dict[str, Any] | None:
    """Echo one JSON-RPC 2.0 request; None for a notification (no ``id``)."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
        rid = msg.get("id") if isinstance(msg, dict) else None
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": "Invalid Request"}}
    if "id" not in msg:
        return None
    return {"jsonrpc": "2.0", "id": msg["id"],
            "result": {"method": msg["method"], "params": msg.get("params")}}


class A2AHandler(_Base):
    """POST /v1/a2a: JSON-RPC 2.0 echo (batches too); notifications get 204."""

    def post(self) -> None:
        try:
            msg = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            reply: Any = {"jsonrpc": "2.0", "id": None,
                          "error": {"code": -32700, "message": "Parse error"}}
        else:
            if isinstance(msg, list) and msg:
                reply = [r for r in map(_rpc_reply, msg) if r is not None] or None
            else:
                reply = _rpc_reply(msg if msg != [] else None)
        if reply is None:
            self.set_status(204)
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(reply))


class _StoreHandler(_Base):
    """JSON answers and OpenAI cursor pages over the in-memory stores."""

    def send_json(self, obj: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(obj))

    def send_page(self, items: list[dict[str, Any]]) -> None:
        """``{object: list, data, first_id, last_id, has_more}`` with ``limit``/``after``/``order``."""
        if self.get_query_argument("order", "desc") == "desc":
            items = items[::-1]
        after = self.get_query_argument("after", None)
        ids = [it["id"] for it in items]
        if after in ids:
            items = items[ids.index(after) + 1:]
        try:
            limit = int(self.get_query_argument("limit", None) or STORE_LIMIT)
        except ValueError:
            self.send_api_error(400, "'limit' must be an integer")
            return
        page = items[:max(1, limit)]
        self.send_json({"object": "list", "data": page,
                        "first_id": page[0]["id"] if page else None,
                        "last_id": page[-1]["id"] if page else None,
                        "has_more": len(items) > len(page)})


class FilesHandler(_StoreHandler):
    """GET (list, ``purpose`` filter) / POST (multipart ``file`` + ``purpose``) /v1/files."""

    def get(self) -> None:
        purpose = self.get_query_argument("purpose", None)
        self.send_page([obj for obj, _ in self.state.files.values()
                        if purpose is None or obj["purpose"] == purpose])

    def post(self) -> None:
        upload = upload_info(self.request)
        if upload is None:
            self.send_api_error(400, "a multipart 'file' part is required")
            return
        info, content = upload
        purpose = info["fields"].get("purpose")
        if not isinstance(purpose, str) or not purpose:
            self.send_api_error(400, "'purpose' is required")
            return
        now = int(time.time())
        seconds = info["fields"].get("expires_after[seconds]")
        fid = f"file-mock{next(_ids)}"
        obj = {"id": fid, "object": "file", "bytes": len(content), "created_at": now,
               "filename": info["filename"] or "upload", "purpose": purpose, "status": "processed",
               "expires_at": now + int(seconds) if isinstance(seconds, str) and seconds.isdigit() else None,
               "status_details": None}
        self.state.files.put(fid, (obj, content))
        self.send_json({**obj, "x_mock": info})


class FileHandler(_StoreHandler):
    """GET / DELETE /v1/files/{id}."""

    def get(self, fid: str) -> None:
        if (entry := self.state.files.get(fid)) is None:
            self.not_found("File", fid)
            return
        self.send_json(entry[0])

    def delete(self, fid: str) -> None:
        if self.state.files.pop(fid, None) is None:
            self.not_found("File", fid)
            return
        self.send_json({"id": fid, "object": "file", "deleted": True})


class FileContentHandler(_StoreHandler):
    """GET /v1/files/{id}/content: the stored bytes."""

    def get(self, fid: str) -> None:
        if (entry := self.state.files.get(fid)) is None:
            self.not_found("File", fid)
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(entry[1])


_BATCH_OPEN = frozenset({"validating", "in_progress", "finalizing"})


class BatchesHandler(_StoreHandler):
    """GET (list) / POST (create, status ``validating``) /v1/batches."""

    def get(self) -> None:
        self.send_page(list(self.state.batches.values()))

    def post(self) -> None:
        req = self.json_body()
        if req is None:
            return
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(req.get(key), str):
                self.send_api_error(400, f"Missing required parameter: '{key}'")
                return
        stored = self.state.files.get(req["input_file_id"])
        total = sum(1 for line in stored[1].splitlines() if line.strip()) if stored else 0
        now = int(time.time())
        bid = f"batch_mock{next(_ids)}"
        obj = {
            "id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
            "input_file_id": req["input_file_id"], "completion_window": req["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": total, "completed": 0, "failed": 0},
            "metadata": req.get("metadata"),
        }
        self.state.batches.put(bid, obj)
        self.send_json(obj)


class BatchHandler(_StoreHandler):
    """GET /v1/batches/{id}; a ``cancelling`` batch is ``cancelled`` from the next look on."""

    def get(self, bid: str) -> None:
        if (obj := self.state.batches.get(bid)) is None:
            self.not_found("batch", bid, "batch_id")
            return
        if obj["status"] == "cancelling":
            obj.update(status="cancelled", cancelled_at=int(time.time()))
        self.send_json(obj)


class BatchCancelHandler(_StoreHandler):
    """POST /v1/batches/{id}/cancel: an open batch goes to ``cancelling``."""

    def post(self, bid: str) -> None:
        if (obj := self.state.batches.get(bid)) is None:
            self.not_found("batch", bid, "batch_id")
            return
        if obj["status"] in _BATCH_OPEN:
            obj.update(status="cancelling", cancelling_at=int(time.time()))
        self.send_json(obj)


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


class MockConfigHandler(tornado.web.RequestHandler):
    """GET shows, POST merges, DELETE resets the catalog settings gateway tests steer.

    ``models_fault``: ``"<status>"`` (400..599), ``"hang"``, ``"slow-<ms>"`` or null;
    ``models``: the ids GET /v1/models reports, or null for the defaults.
    """

    def initialize(self, state: MockState) -> None:
        self.state = state

    def _send(self, status: int = 200, error: str | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": error} if error else self.state.config()))

    def get(self) -> None:
        self._send()

    def delete(self) -> None:
        self.state.models_fault = None
        self.state.set_models(MODEL_IDS)
        self._send()

    def post(self) -> None:
        try:
            cfg = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            cfg = None
        if not isinstance(cfg, dict) or set(cfg) - {"models_fault", "models"}:
            self._send(400, "expected an object with keys models_fault and/or models")
            return
        fault = cfg.get("models_fault", self.state.models_fault)
        if fault is not None:
            fault = str(fault)
            if not _MODELS_FAULT_RE.fullmatch(fault) or (fault.isdigit() and int(fault) > 599):
                self._send(400, "models_fault must be '<400..599>', 'hang', 'slow-<ms>' or null")
                return
        ids = cfg.get("models", self.state.model_ids) or MODEL_IDS
        if not isinstance(ids, (list, tuple)) or not all(isinstance(m, str) and m for m in ids):
            self._send(400, "models must be a list of non-empty strings or null")
            return
        self.state.models_fault = fault
        if "models" in cfg:
            self.state.set_models(tuple(ids))
        self._send()


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
            # The benchmark's two endpoints first: Tornado tries the rules in order.
            (r"/v1/chat/completions", ChatCompletionsHandler, kw),
            (r"/v1/messages", MessagesHandler, kw),
            (r"/v1/messages/count_tokens", CountTokensHandler, kw),
            (r"/v1/models", ModelsHandler, kw),
            (r"/v1/models/(.+)", ModelHandler, kw),
            (r"/v1/embeddings", EmbeddingsHandler, kw),
            (r"/v1/images/generations", ImagesHandler, kw),
            (r"/v1/audio/transcriptions", AudioTextHandler, {**kw, "task": "transcribe"}),
            (r"/v1/audio/translations", AudioTextHandler, {**kw, "task": "translate"}),
            (r"/v1/audio/speech", SpeechHandler, kw),
            (r"/v1/moderations", ModerationsHandler, kw),
            (r"/v1/rerank", RerankHandler, kw),
            (r"/v1/responses", ResponsesHandler, kw),
            (r"/v1/responses/([^/]+)", ResponseHandler, kw),
            (r"/v1/a2a", A2AHandler, kw),
            (r"/v1/files", FilesHandler, kw),
            (r"/v1/files/([^/]+)", FileHandler, kw),
            (r"/v1/files/([^/]+)/content", FileContentHandler, kw),
            (r"/v1/batches", BatchesHandler, kw),
            (r"/v1/batches/([^/]+)", BatchHandler, kw),
            (r"/v1/batches/([^/]+)/cancel", BatchCancelHandler, kw),
            (r"/_mock/requests", MockRequestsHandler, kw),
            (r"/_mock/config", MockConfigHandler, kw),
            (r"/_mock/health", HealthHandler),
            (r"/.*", NotFoundHandler, kw),
        ],
        mock_state=state,
        log_function=lambda _handler: None,  # no per-request access log on the hot path
    )


def make_server(app: tornado.web.Application) -> tornado.httpserver.HTTPServer:
    """An HTTPServer for ``app`` that accepts uploads up to MAX_BODY_BYTES (Tornado: 100 MB)."""
    return tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY_BYTES,
                                         max_buffer_size=MAX_BODY_BYTES)


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
    server = make_server(app)
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
