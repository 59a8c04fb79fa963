"""The start of a provider's event stream, held until it proves to be an answer.

A provider can answer 200 and then send only an error event, or nothing, before its
first content. Relayed at once, that 200 would commit the client to a failed answer
that another target could have given; held, the failure is one like any other before
the first byte, and the walk goes on. So the events before the first content event
(OpenAI's role chunk, Anthropic's message_start and pings) are held, and released with
the first content event; an error event or the stream's end before it is a failure.

Only those first events are parsed: from the first content event on, bytes pass
through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType

import orjson

from converters.plain_events import (
    ASCII_TEXT_DELTA_END,
    PLAIN_EVENT,
    QUIET_EVENTS,
    TEXT_DELTA_HEAD_SIZE,
    TEXT_DELTA_HEADS,
)
from converters.sse import SSEFramer
from converters.upstream_errors import UpstreamError, upstream_error

MAX_HELD = 64 * 1024
"""Bytes of preamble held at most; past it the stream is relayed as it is (no provider
sends that much before its first token, so a stream that does is not one to hold)."""

# The HTTP status a provider would have given the error it sent as an event. Anthropic's
# types are documented with their statuses; OpenAI-compatible servers use the same words.
_STATUS_OF_TYPE = MappingProxyType({
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "api_error": 500,
    "server_error": 500,
    "overloaded_error": 529,
})
_UNKNOWN_ERROR_STATUS = 502
_EVENT_END = re.compile(rb"\r?\n\r?\n")
Scrub = Callable[[str], str]
# OpenAI delta fields that carry an answer (role alone does not).
_CONTENT_FIELDS = frozenset({"content", "tool_calls", "function_call", "reasoning_content", "reasoning",
                            "refusal", "audio"})
# Anthropic events that carry an answer, or end it with a stop reason (an empty text block's
# start does not: an overloaded error can still follow it).
_ANTHROPIC_CONTENT = frozenset({"content_block_delta", "message_delta"})
_MESSAGE_START_HEAD = b"event: message_start\ndata: "
_MESSAGE_START_HEAD_SIZE = len(_MESSAGE_START_HEAD)
# What Anthropic sends between message_start and the first text delta: quiet events (QUIET_EVENTS).
_USUAL_PREAMBLE = (b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
                   b'"content_block":{"type":"text","text":""}}\n\nevent: ping\ndata: {"type":"ping"}\n\n')
_USUAL_PREAMBLE_SIZE = len(_USUAL_PREAMBLE)


class StreamRefused(Exception):
    """The stream ended, or sent an error event, before any content."""

    def __init__(self, status: int, error: UpstreamError | None) -> None:
        super().__init__(status)
        self.status = status  # as if the provider had answered with it (the stream's own when it ended)
        self.error = error  # the error event's fields; None when the stream just ended


class StreamStart:
    """Holds a provider stream's preamble until its first content event (see the module docstring)."""

    __slots__ = ("_format", "_scrub", "_framer", "_held", "_status")

    def __init__(self, fmt: str, status: int, scrub: Scrub) -> None:
        """`fmt`: the provider's wire format; `status`: the stream's own; `scrub` removes its key
        from an error's text."""
        self._format = fmt
        self._status = status
        self._scrub = scrub
        # Both made only when needed: most streams' first read is whole events with content.
        self._framer: SSEFramer | None = None
        self._held: bytearray | None = None

    def feed(self, data: bytes) -> bytes | None:
        """None while the preamble is held; else every byte so far, to relay from now on.

        Raises StreamRefused on an error event before the first content event."""
        framer = self._framer
        if framer is None and data[-2:] == b"\n\n":  # (a slice: a bytes.endswith call costs more)
            events = data  # whole events, nothing held before them: what a framer would pass
        else:
            if framer is None:
                self._framer = framer = SSEFramer()
            events = framer.feed(data)
        if self._judges_content(events):
            return self._release(data) if self._held else data
        held = self._held
        if held is None:
            self._held = held = bytearray()
        held += data
        if len(held) > MAX_HELD:
            return self._release(b"")
        return None

    def end(self) -> None:
        """The stream ended while its preamble was held: raises StreamRefused."""
        raise StreamRefused(self._status, None)

    def _release(self, data: bytes) -> bytes:
        """What was held, then `data` (as it is when nothing was: the usual first read)."""
        held = self._held
        if not held:
            return data
        held += data
        self._held = None
        return bytes(held)

    def _judges_content(self, block: bytes) -> bool:
        """Whether an event of `block` (whole events) is a content event, judged in order up to the
        first one: the rest of a read is never cut up (its events as _EVENT_END.split cuts them)."""
        if 13 in block:  # a CR (an int's `in` is a memchr; a bytes.find call costs ~1 K instructions more)
            return any(map(self._judge, _EVENT_END.split(block)))
        if self._format == "anthropic":
            return self._judges_anthropic(block)
        return self._judges_openai(block)

    def _judges_anthropic(self, block: bytes) -> bool:
        """_judges_content for Anthropic events with no CR. A read that starts the stream starts with
        its message_start, then (most often) _USUAL_PREAMBLE, then a text delta: the first two are
        told not content here by their bytes as _judge tells them (message_start one data line
        with no `"error"`), and the delta content (a usual head, then plain ASCII text and the
        event's end), without cutting each out and looking it up (a slice hashed, and each
        multi-byte needle scanned for at several instructions a byte). Anything else is judged
        as usual from where this stopped."""
        start = 0
        if block[:_MESSAGE_START_HEAD_SIZE] == _MESSAGE_START_HEAD:
            lf = block.find(b"\n", _MESSAGE_START_HEAD_SIZE)  # (one byte: a memchr)
            if block[lf : lf + 2] == b"\n\n" and block.find(b'"error"', _MESSAGE_START_HEAD_SIZE, lf) < 0:
                start = lf + 2
                if block[start : start + _USUAL_PREAMBLE_SIZE] == _USUAL_PREAMBLE:
                    start += _USUAL_PREAMBLE_SIZE
        if block[start : start + TEXT_DELTA_HEAD_SIZE] in TEXT_DELTA_HEADS \
                and ASCII_TEXT_DELTA_END.match(block, start + TEXT_DELTA_HEAD_SIZE) is not None:
            return True
        return self._judges_run(self._judge, block, start)

    def _judges_openai(self, block: bytes) -> bool:
        """_judges_content for OpenAI events with no CR. When the read's first event is plainly no
        error (one line `data: {...}` with no `"error"` and no backslash, which a key written with
        escapes would need), the events after it are judged first: the read is released whole
        when any of them is content, and the first one, the stream's role chunk when the read
        starts it, is seldom content (so it is parsed only when that is not enough). The outcome
        is the one of judging in order: the first event's verdict still goes before any error
        after it. The usual events are found by their line breaks (one line each, then a blank
        one), the second one parsed without being cut out first: each bytes.find is a call."""
        size = len(block)
        lf = block.find(b"\n")
        if not (0 <= lf < size - 2 and block[lf + 1] == 10):  # the first event not one line, or the only one
            return self._judges_run(self._judge_lf, block, 0)
        first = block[:lf]
        if first[:7] != b"data: {" or 92 in first or first.find(b'"error"') >= 0:  # 92: a backslash
            return self._judges_run(self._judge_lf, block, 0)
        rest = lf + 2
        try:
            end = block.find(b"\n", rest)  # the second event's, when it is one line `data: {...}`
            if rest < end < size - 1 and block[end + 1] == 10 and block[end - 1] == 125 \
                    and block[rest : rest + 7] == b"data: {":  # 125: }; what _judge_lf would parse
                if self._judge_data(block[rest + 6 : end]) \
                        or self._judges_run(self._judge_lf, block, end + 2):
                    return True
            elif self._judges_run(self._judge_lf, block, rest):
                return True
        except StreamRefused:
            if self._judge_lf(first):
                return True
            raise
        return self._judge_lf(first)

    @staticmethod
    def _judges_run(judge: Callable[[bytes], bool], block: bytes, start: int) -> bool:
        """Whether `judge` finds a content event among the events of `block` from `start` on, in order."""
        while (end := block.find(b"\n\n", start)) >= 0:
            if judge(block[start:end]):
                return True
            start = end + 2
        return judge(block[start:])

    def _judge_lf(self, event: bytes) -> bool:
        """_judge for an event of an OpenAI stream with no CR in it: the usual one, a single line
        `data: {...}`, is parsed at once (what _fields would give is the bytes after `data: `)."""
        if event[:7] == b"data: {" and event[-1:] == b"}" and event.find(b"\n") < 0:
            return self._judge_data(event[6:])
        return self._judge(event)

    def _judge(self, event: bytes) -> bool:
        """True for a content event; raises StreamRefused for an error event."""
        if self._format == "anthropic":
            # The usual forms by their exact bytes. A text delta whose text holds no quote cannot
            # close its string early: the event is that delta (content), or no JSON at all
            # (relayed, as _judge_data does), so its text need not be looked at further.
            if event[:TEXT_DELTA_HEAD_SIZE] in TEXT_DELTA_HEADS and event[-3:] == b'"}}' \
                    and event.find(b'"', TEXT_DELTA_HEAD_SIZE, -3) < 0:
                return True
            if event in QUIET_EVENTS:
                return False
            if event[:27] == b"event: message_start\ndata: " and event.find(b"\n", 27) < 0 \
                    and event.find(b'"error"') < 0:
                return False  # as below, without reading its fields
            plain = PLAIN_EVENT.fullmatch(event)
            if plain is not None:  # what parsing it would tell (converters/plain_events.py)
                return plain.lastgroup == "text"
        name, data = _fields(event)
        if not data and not name:
            return False
        if name == "error":
            self._refuse(data)
        if data == b"[DONE]":
            return False
        if name == "message_start" and self._format == "anthropic" and data.find(b'"error"') < 0:
            return False  # the message's metadata, never content: not parsed here (the converter does)
        return self._judge_data(data)

    def _judge_data(self, data: bytes) -> bool:
        """_judge for an event's data (name neither `error` nor an Anthropic `message_start`)."""
        try:
            document = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return True  # not ours to judge: relay it
        if not isinstance(document, dict):
            return True
        if "error" in document:
            self._refuse(data)
        if self._format == "anthropic":
            return document.get("type") in _ANTHROPIC_CONTENT or _opens_content(document)
        choices = document.get("choices")
        if not isinstance(choices, list):
            return False
        for choice in choices:  # each choice read here, not by a function of its own: a call less
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                return True
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for name, value in delta.items():  # a delta holds a few keys; there are seven names
                    if value and name in _CONTENT_FIELDS:
                        return True
        return False

    def _refuse(self, data: bytes) -> None:
        error = upstream_error(data, self._scrub)
        raise StreamRefused(_STATUS_OF_TYPE.get(error.type or "", _UNKNOWN_ERROR_STATUS), error)


def _opens_content(document: dict) -> bool:
    """An Anthropic content_block_start that already carries something (a tool's name, text)."""
    block = document.get("content_block")
    if document.get("type") != "content_block_start" or not isinstance(block, dict):
        return False
    return block.get("type") != "text" or bool(block.get("text"))


def _fields(event: bytes) -> tuple[str, bytes]:
    """An event's name and its data lines joined (SSE: lines `event:` and `data:`)."""
    if event.find(b"\r") < 0:  # the usual events, read without splitting lines:
        lf = event.find(b"\n")
        if lf < 0 and event.startswith(b"data:"):
            return "", event[5:].strip()  # OpenAI's, one data line
        if event.startswith(b"event:") and event.startswith(b"data:", lf + 1) \
                and event.find(b"\n", lf + 1) < 0:
            return event[6:lf].strip().decode("latin1"), event[lf + 6 :].strip()  # Anthropic's, named
    return fields_by_lines(event)


def fields_by_lines(event: bytes) -> tuple[str, bytes]:
    """_fields for any event, line by line: what its fast paths must find too."""
    name = ""
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("latin1")
    return name, b"\n".join(data).strip()
