"""Token usage read back from upstream answers, for metrics and accounting.

Streams are scanned cheaply: only an event that carries a non-null "usage"
object is parsed as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_COMPACT_USAGE = b'"usage":{'  # as most providers write it
_NO_DETAILS: Mapping[str, Any] = MappingProxyType({})
_MAX_TOKENS = 2**53  # past it a count is no count (and JSON numbers lose integer precision)


def _count(value: Any) -> int:
    """A token count as the upstream gave it, when it is one: a whole number from 0 to
    _MAX_TOKENS (2.0 is 2); anything else (negative, text, 1e308, true) counts as 0."""
    if type(value) is int:
        return value if 0 <= value <= _MAX_TOKENS else 0
    if type(value) is float and 0 <= value <= _MAX_TOKENS and value.is_integer():
        return int(value)
    return 0


def _details(usage: dict[str, Any], name: str, alias: str) -> Mapping[str, Any]:
    """The details object `name` (or else `alias`) in `usage`, else an empty one."""
    found = usage.get(name)
    if isinstance(found, dict):
        return found
    found = usage.get(alias)
    return found if isinstance(found, dict) else _NO_DETAILS


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
        """Take an OpenAI `usage` object (chat completions, embeddings or the Responses API).

        Each count is what _count makes of it, and each details object what _details finds; the
        usual ones (an int in range, a details object under its chat name) are taken here in a
        step, without those calls (six, some 5 K instructions: every stream, every JSON answer)."""
        self.reported = True
        get = usage.get
        count = get("prompt_tokens") or get("input_tokens")
        self.input = prompt = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        count = get("completion_tokens") or get("output_tokens")
        self.output = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        details = get("prompt_tokens_details")
        if not isinstance(details, dict):
            details = _details(usage, "prompt_tokens_details", "input_tokens_details")
        count = details.get("cached_tokens")
        cached = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        self.cached = cached if cached < prompt else prompt  # min() without its call
        details = get("completion_tokens_details")
        if not isinstance(details, dict):
            details = _details(usage, "completion_tokens_details", "output_tokens_details")
        count = details.get("reasoning_tokens")
        self.reasoning = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)

    def add_anthropic(self, usage: dict[str, Any]) -> None:
        """Take an Anthropic `usage` object (a message, message_start or a cumulative message_delta).

        Anthropic counts cache reads and cache writes apart from `input_tokens`; here
        `input` is their sum, so that it means "all prompt tokens" as OpenAI's
        prompt_tokens does, and `cached` (cache reads) is a part of it in both formats.
        Counts a message_delta omits keep the value message_start gave.
        The usual counts (an int in range) are taken without calling _count, as add_openai does.
        """
        self.reported = True
        get = usage.get
        count = get("input_tokens")
        if count is None:
            fresh = self.input - self.cached - self.cache_write
        else:
            fresh = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        count = get("cache_read_input_tokens")
        if count is not None:
            self.cached = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        count = get("cache_creation_input_tokens")
        if count is not None:
            self.cache_write = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        self.input = fresh + self.cached + self.cache_write
        count = get("output_tokens")
        if count is not None:
            self.output = count if type(count) is int and 0 <= count <= _MAX_TOKENS else _count(count)
        details = get("output_tokens_details")
        if isinstance(details, dict) and details.get("thinking_tokens") is not None:
            self.reasoning = _count(details["thinking_tokens"])

    def add_anthropic_output(self, output: int) -> None:
        """add_anthropic of a usage object that gives only `output_tokens`, a count in bounds
        (as the usual message_delta's does): the other counts stay as they are."""
        self.reported = True
        self.output = output


def usage_from_openai(document: Any) -> Usage:
    """Usage of a parsed OpenAI JSON answer (zero and unreported when it has none)."""
    return _usage_of(document, Usage.add_openai)


def usage_from_anthropic(document: Any) -> Usage:
    """Usage of a parsed Anthropic message (zero and unreported when it has none)."""
    return _usage_of(document, Usage.add_anthropic)


def _usage_of(document: Any, add: Callable[[Usage, dict[str, Any]], None]) -> Usage:
    usage = Usage()
    if isinstance(document, dict) and isinstance(document.get("usage"), dict):
        add(usage, document["usage"])
    return usage


def usage_from_body(body: bytes, read: Callable[[Any], Usage]) -> Usage:
    """Usage of a buffered answer that nothing else parses: `read` (one of the above) on its
    document, when it has a usage object at all (else it is not worth parsing). Most providers
    write it compact, which bytes.find finds for less than half the pattern's instructions."""
    if body.find(_COMPACT_USAGE) < 0 and _USAGE_OBJECT.search(body) is None:
        return Usage()
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Usage()
    return read(document)


def _event_end(data: bytes, start: int) -> int:
    """Just past the blank line that ends the SSE event at `start` (events come whole, framed;
    the usual one-line event is cut without it, `OpenAIStreamUsage._read`)."""
    lf, crlf = data.find(b"\n\n", start), data.find(b"\r\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf + 4 < lf + 2):
        return crlf + 4
    return lf + 2 if lf >= 0 else len(data)


def asks_for_usage(request: dict[str, Any]) -> bool:
    """Whether an OpenAI chat request asks for its stream's usage chunk."""
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def with_stream_usage(request: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request whose stream will end with its usage chunk (OpenAI sends one only
    when asked): without it a streamed answer's tokens are not known, so neither counted nor
    charged to a budget. A request that is not streamed, or already asks, is sent as it is."""
    if request.get("stream") is not True:
        return request
    options = request.get("stream_options")
    if not isinstance(options, dict):
        return {**request, "stream_options": {"include_usage": True}}
    if options.get("include_usage") is True:
        return request
    return {**request, "stream_options": {**options, "include_usage": True}}


class OpenAIStreamUsage:
    """Pass-through converter over whole OpenAI SSE events that records the usage chunk.

    `hide`: the client did not ask for that chunk (the gateway did, see `with_stream_usage`):
    an event that carries usage and no choices is read, not relayed.
    """

    __slots__ = ("usage", "hide")

    def __init__(self, hide: bool = False) -> None:
        self.usage = Usage()
        self.hide = hide

    def feed(self, data: bytes) -> bytes:
        # Most reads hold no usage key at all (one find). Most providers write JSON without
        # spaces (`"usage":{`): bytes.find finds those objects for a quarter of a regex search's
        # instructions. In a read with none, a compact writer's `"usage":null` (every chunk but
        # the last, once usage is asked for) says there is none; else the key is the pattern's
        # to find, which takes every spacing. The key is looked for by partition, a find without
        # find's per-call parsing of its arguments (some 500 instructions less; a read without the
        # key is not copied), and a null just after it is seen without a search.
        before, key_found, after = data.partition(b'"usage"')
        if not key_found:
            return data
        if len(after) < 12 and after[:5] == b":null":
            return data  # a read's one event, its usage null: no room after it for another key
        key = len(before)
        at = data.find(_COMPACT_USAGE, key)
        if at < 0:
            if after[:5] == b":null" or data.find(b'"usage":null', key) >= 0:
                return data
            return self._take(data, _USAGE_OBJECT.search(data, key))
        while at >= 0:
            data, end = self._read(data, at, at + len(_COMPACT_USAGE))
            at = data.find(_COMPACT_USAGE, end)
        return data

    def _take(self, data: bytes, match: re.Match[bytes] | None) -> bytes:
        """`data` with every usage object from `match` on read, by the pattern."""
        while match is not None:
            data, end = self._read(data, match.start(), match.end())
            match = _USAGE_OBJECT.search(data, end)
        return data

    def _read(self, data: bytes, at: int, after: int) -> tuple[bytes, int]:
        """Read the event with the usage object at `at` (its `{` just before `after`); returns
        `data`, without that event when it is hidden, and where to search on."""
        start = data.rfind(b"data:", 0, at)
        # The usual event is one line: its first line break, found once, is past the object.
        end = data.find(b"\n", start) if start >= 0 else -1
        one_line = end >= after
        if not one_line:
            end = data.find(b"\n", after)
        end = len(data) if end < 0 else end
        try:
            chunk = orjson.loads(data[start + 5 : end])
        except orjson.JSONDecodeError:
            chunk = None
        if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
            self.usage.add_openai(chunk["usage"])
            if self.hide and chunk.get("choices") == []:
                if one_line and data[end + 1 : end + 2] == b"\n":  # what _event_end would find first
                    return data[:start] + data[end + 2 :], start
                return data[:start] + data[_event_end(data, start):], start
        return data, end

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
