"""Token usage read back from upstream answers, for metrics and accounting.

Streams are scanned cheaply: only an event that carries a non-null "usage"
object is parsed as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


@dataclass(slots=True)
class Usage:
    """Tokens of one request, in the gateway's own terms whatever the provider's format."""

    input: int = 0
    output: int = 0
    cached: int = 0
    reasoning: int = 0
    reported: bool = False
    cache_write: int = 0  # prompt tokens written to the provider's cache (Anthropic cache creation)

    def add_openai(self, usage: dict[str, Any]) -> None:
        """Take an OpenAI `usage` object (chat completions, embeddings or the Responses API)."""
        self.reported = True
        self.input = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        self.output = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        completion_details = (
            usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
        )
        self.cached = int(prompt_details.get("cached_tokens") or 0)
        self.reasoning = int(completion_details.get("reasoning_tokens") or 0)

    def add_anthropic(self, usage: dict[str, Any]) -> None:
        """Take an Anthropic `usage` object (a message, message_start or a cumulative message_delta).

        Anthropic counts cache reads and cache writes apart from `input_tokens`; here
        `input` is their sum, so that it means "all prompt tokens" as OpenAI's
        prompt_tokens does, and `cached` (cache reads) is a part of it in both formats.
        Counts a message_delta omits keep the value message_start gave.
        """
        self.reported = True
        fresh = usage.get("input_tokens")
        fresh = self.input - self.cached - self.cache_write if fresh is None else int(fresh or 0)
        if usage.get("cache_read_input_tokens") is not None:
            self.cached = int(usage["cache_read_input_tokens"])
        if usage.get("cache_creation_input_tokens") is not None:
            self.cache_write = int(usage["cache_creation_input_tokens"])
        self.input = fresh + self.cached + self.cache_write
        if usage.get("output_tokens") is not None:
            self.output = int(usage["output_tokens"])
        details = usage.get("output_tokens_details")
        if isinstance(details, dict) and details.get("thinking_tokens") is not None:
            self.reasoning = int(details["thinking_tokens"])


def usage_from_openai_body(body: bytes) -> Usage:
    """Usage of a buffered OpenAI JSON answer (zero and unreported when it has none)."""
    return _usage_from_body(body, Usage.add_openai)


def usage_from_anthropic_body(body: bytes) -> Usage:
    """Usage of a buffered Anthropic message (zero and unreported when it has none)."""
    return _usage_from_body(body, Usage.add_anthropic)


def _usage_from_body(body: bytes, add: Callable[[Usage, dict[str, Any]], None]) -> Usage:
    usage = Usage()
    if _USAGE_OBJECT.search(body) is None:
        return usage  # no usage object: not worth parsing the body
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return usage
    if isinstance(document, dict) and isinstance(document.get("usage"), dict):
        add(usage, document["usage"])
    return usage


class OpenAIStreamUsage:
    """Pass-through converter over whole OpenAI SSE events that records the usage chunk."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage = Usage()

    def feed(self, data: bytes) -> bytes:
        match = _USAGE_OBJECT.search(data)
        while match is not None:
            start = data.rfind(b"data:", 0, match.start())
            end = data.find(b"\n", match.end())
            try:
                chunk = orjson.loads(data[start + 5 : end if end >= 0 else len(data)])
                if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                    self.usage.add_openai(chunk["usage"])
            except orjson.JSONDecodeError:
                pass
            match = _USAGE_OBJECT.search(data, end if end >= 0 else len(data))
        return data

    def close(self) -> bytes:
        return b""


class AnthropicStreamUsage:
    """Pass-through converter over whole Anthropic SSE events that records usage.

    Usage rides on message_start (inside the message) and on message_delta (cumulative
    counts); only lines that hold a "usage" key are parsed.
    """

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage = Usage()

    def feed(self, data: bytes) -> bytes:
        at = data.find(b'"usage"')
        while at >= 0:
            start = data.rfind(b"data:", 0, at)
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end
            if start >= 0:
                self._take(data[start + 5 : end])
            at = data.find(b'"usage"', end)
        return data

    def _take(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            usage = event["message"].get("usage")
        elif kind == "message_delta":
            usage = event.get("usage")
        else:
            return
        if isinstance(usage, dict):
            self.usage.add_anthropic(usage)

    def close(self) -> bytes:
        return b""


def usage_from_tail(tail: bytes) -> Usage:
    """Usage from the end of a JSON or SSE answer of any OpenAI endpoint.

    Every OpenAI answer that reports usage does so in its last object (or last event),
    so the last few KiB suffice: the body is never parsed whole.
    """
    usage = Usage()
    start = -1
    for match in _USAGE_OBJECT.finditer(tail):
        start = match.end() - 1
    if start < 0:
        return usage
    depth = 0
    for end in range(start, len(tail)):
        byte = tail[end]
        if byte == 0x7B:  # {
            depth += 1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                try:
                    found = orjson.loads(tail[start : end + 1])
                except orjson.JSONDecodeError:
                    return usage
                if isinstance(found, dict):
                    usage.add_openai(found)
                return usage
    return usage
