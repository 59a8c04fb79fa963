"""Token usage read back from upstream answers, for metrics and accounting.

Streams are scanned cheaply: only an event that carries a non-null "usage"
object is parsed as JSON.
"""

from __future__ import annotations

import re
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

    def add_openai(self, usage: dict[str, Any]) -> None:
        """Take an OpenAI `usage` object (chat completions or embeddings)."""
        self.reported = True
        self.input = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        self.output = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        self.cached = int(prompt_details.get("cached_tokens") or 0)
        self.reasoning = int(completion_details.get("reasoning_tokens") or 0)


def usage_from_openai_body(body: bytes) -> Usage:
    """Usage of a buffered OpenAI JSON answer (zero and unreported when it has none)."""
    usage = Usage()
    if _USAGE_OBJECT.search(body) is None:
        return usage
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return usage
    if isinstance(document, dict) and isinstance(document.get("usage"), dict):
        usage.add_openai(document["usage"])
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
