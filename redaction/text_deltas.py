"""The one text piece of a streamed answer's event, found without parsing the event.

Most events of a streamed answer carry one piece of text in a fixed place: OpenAI
`"delta":{"content":"..."}` in a chunk's only choice, Anthropic
`"delta":{"type":"text_delta","text":"..."}`. `text_delta` matches the whole event
against the shape of such an event, in one regex: every other value is a number, null,
true, false or a string without escapes (so every quote is where the shape says, and a
key found is a key, never text that looks like one); one data line, after an `event:`
line at most; an OpenAI chunk has one choice and no finish_reason. Any other event
(None) is for the parser: the first and last chunks, tool calls, usage, a chunk with
two choices or a key order of its own.

A stream's events differ mostly in their text: an event whose bytes up to the text are
those of the last event matched, whose text holds no quote or backslash, and whose rest
is of the shape (the same bytes, or the rest's own regex) is taken without the regex.

`textless` knows the events that carry no text at all by their shape too, and what each
ends: an OpenAI chunk of one choice whose delta and choice hold only scalars (its text fields
empty or null, logprobs null), ending its choice when it has a finish_reason;
Anthropic's `content_block_stop` (its block), `message_stop` (all) and `ping`; and
`[DONE]` (all). A stream's first and last events are of these, so the events around its
text need no parsing either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

import orjson

OPENAI_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")
"""The OpenAI delta and message fields whose text is redacted (`reasoning`: OpenAI-compatible
servers' name for reasoning_content)."""
ANTHROPIC_TEXT_DELTAS = MappingProxyType(
    {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"})
"""The Anthropic delta types whose text is redacted, with the field that carries it."""

_VALUE = rb'"((?:[^"\\]|\\.)*)"'  # the text: a JSON string's inside, escapes included
_SCALAR = rb'(?:"[^"\\]*"|-?[0-9][0-9.eE+\-]*|null|true|false)'
_KEY = rb'"(?!finish_reason")[A-Za-z_]{1,40}"'  # a key; finish_reason only as null
_MEMBER = rb"(?:" + _KEY + rb": ?" + _SCALAR + rb'|"finish_reason": ?null)'
_OPENAI_REST = rb"\}(?:, ?" + _MEMBER + rb")*\}\](?:, ?" + _MEMBER + rb")*\}"  # after the text
_OPENAI = re.compile(
    rb"data: ?\{(?:" + _MEMBER + rb", ?)*"
    rb'"choices": ?\[\{(?:' + _MEMBER + rb', ?)*"index": ?([0-9]{1,9}), ?'
    rb'"delta": ?\{"(content|reasoning_content)": ?' + _VALUE + _OPENAI_REST)
_ANTHROPIC_REST = rb"\}\}"
_ANTHROPIC = re.compile(
    rb'(?:event: ?content_block_delta\n)?data: ?\{"type": ?"content_block_delta", ?"index": ?([0-9]{1,9}), ?'
    rb'"delta": ?\{"type": ?"(text_delta|thinking_delta|input_json_delta)", ?'
    rb'"(text|thinking|partial_json)": ?' + _VALUE + _ANTHROPIC_REST)
_TOP = rb'"(?!choices")[A-Za-z_]{1,40}": ?' + _SCALAR  # a chunk's member, choices aside
_TEXTS = rb"(?:" + "|".join(OPENAI_TEXT_FIELDS).encode() + rb")"
_QUIET_DELTA = (rb'(?:"' + _TEXTS + rb'": ?(?:""|null)'
                rb'|"(?!' + _TEXTS + rb'")[A-Za-z_]{1,40}": ?' + _SCALAR + rb")")
_QUIET_CHOICE = (rb'(?:"index": ?([0-9]{1,9})|"finish_reason": ?(null|"[^"\\]*")|"logprobs": ?null'
                 rb'|"delta": ?\{(?:' + _QUIET_DELTA + rb"(?:, ?" + _QUIET_DELTA + rb")*)?\}"
                 rb'|"(?!index"|finish_reason"|logprobs"|delta")[A-Za-z_]{1,40}": ?' + _SCALAR + rb")")
_OPENAI_TEXTLESS = re.compile(
    rb"data: ?\{(?:" + _TOP + rb", ?)*" rb'"choices": ?\[\{(?:' + _QUIET_CHOICE + rb'(?:, ?(?=")|(?=\})))+'
    rb"\}\](?:, ?" + _TOP + rb")*\}")  # the choice's members once, so that its groups are 1 and 2
_ANTHROPIC_TEXTLESS = re.compile(
    rb"(?:event: ?[a-z_]{1,40}\n)?"
    rb'data: ?\{"type": ?"(content_block_stop|message_stop|ping)"(?:, ?"index": ?([0-9]{1,9}))?\}')
_DONE = frozenset({b"data: [DONE]", b"data:[DONE]"})
_RESTS = MappingProxyType({False: re.compile(rb'"' + _OPENAI_REST),
                           True: re.compile(rb'"' + _ANTHROPIC_REST)})
_MARKS = MappingProxyType({False: re.compile(rb'\{"(?:reasoning_)?content"'),  # what a text event holds
                          True: re.compile(rb'"content_block_delta"')})
_ANTHROPIC_NAMES = MappingProxyType(
    {kind.encode(): name.encode() for kind, name in ANTHROPIC_TEXT_DELTAS.items()})

Delta = tuple[tuple[Any, ...], int, int, str]
"""The field's key (as AnswerRedactor names it: the choice or block index, and the field),
where the string's inside begins and ends in the event's bytes, and its text."""

class End(Enum):
    """What a textless event ends, when not one choice's or block's fields."""

    EVERY = "every"  # `[DONE]`, `message_stop`
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class Textless:
    """An event that carries no text, and what it ends: a choice's or block's index, or End."""

    ends: int | End


_TEXTLESS_EVERY, _TEXTLESS_NOTHING = Textless(End.EVERY), Textless(End.NOTHING)


class TextDeltas:
    """The text pieces of one stream's events (`anthropic`: of the Messages format)."""

    __slots__ = ("_whole", "_rest", "_mark", "_head", "_tail", "_key", "_anthropic")

    def __init__(self, anthropic: bool) -> None:
        self._anthropic = anthropic
        self._whole = _ANTHROPIC if anthropic else _OPENAI
        self._rest = _RESTS[anthropic]
        self._mark = _MARKS[anthropic]
        self._head = b"\0"  # the last event matched, up to its text; its rest; its key
        self._tail = b""
        self._key: tuple[Any, ...] = ()

    def read_run(self, framed: bytes) -> tuple[tuple[Any, ...], bytes, bytes, list[bytes], list[str]] | None:
        """Whole events (each with its blank line) that all are the last event matched but
        for their text: its key, its bytes before and after the text (the blank line
        included), and the texts as bytes and as read; else None. `head` ends with the
        quote that opens the text and holds no backslash, so it cannot stand inside a text
        (whose quotes are escaped): splitting on it finds the events."""
        if not self._key:  # no event matched yet
            return None
        head, tail = self._head, self._tail + b"\n\n"
        parts = framed.split(head)
        if parts[0] or len(parts) < 3:
            return None
        del parts[0]
        size = len(tail)
        if not all(part.endswith(tail) for part in parts):
            return None
        values = [part[:-size] for part in parts]
        try:
            texts = [orjson.loads(b'"' + value + b'"') if value.find(b"\\") >= 0 or value.find(b'"') >= 0
                     else value.decode() for value in values]
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return None
        return self._key, head, tail, values, texts

    def textless(self, raw: bytes) -> Textless | None:
        """What the event (`raw` without its blank line) ends, when it carries no text; else None."""
        if raw in _DONE:
            return _TEXTLESS_EVERY
        if self._anthropic:
            found = _ANTHROPIC_TEXTLESS.fullmatch(raw)
            if found is None:
                return None
            kind = found.group(1)
            if kind == b"content_block_stop":
                return Textless(int(found.group(2) or 0))
            return _TEXTLESS_EVERY if kind == b"message_stop" else _TEXTLESS_NOTHING
        found = _OPENAI_TEXTLESS.fullmatch(raw)
        if found is None:
            return None
        if found.group(2) in (None, b"null"):
            return _TEXTLESS_NOTHING
        return Textless(int(found.group(1) or 0))

    def event(self, key: tuple[Any, ...], text: str) -> bytes | None:
        """An event like the last one matched but carrying `text` (without its blank
        line), when that event was of field `key`; else None."""
        if key != self._key:
            return None
        return self._head + orjson.dumps(text)[1:-1] + self._tail

    def read(self, raw: bytes) -> Delta | None:
        """The event's one text piece (`raw` without its blank line), or None."""
        head = self._head
        if raw.startswith(head):
            start = len(head)
            end = raw.find(b'"', start)
            if end >= 0 and raw.find(b"\\", start, end) < 0 and (
                    (raw.endswith(self._tail) and len(raw) - len(self._tail) == end)
                    or self._rest.fullmatch(raw, end)):
                try:
                    return self._key, start, end, raw[start:end].decode()
                except UnicodeDecodeError:
                    return None
        if self._mark.search(raw) is None:  # no text field at all: spare the regex
            return None
        found = self._whole.fullmatch(raw)
        if found is None:
            return None
        start, end = found.span(found.lastindex)  # type: ignore[arg-type]
        if self._anthropic and _ANTHROPIC_NAMES[found.group(2)] != found.group(3):
            return None
        value = raw[start:end]
        try:
            text = orjson.loads(raw[start - 1 : end + 1]) if value.find(b"\\") >= 0 else value.decode()
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return None
        self._head, self._tail = raw[:start], raw[end:]
        self._key = (int(found.group(1)), found.group(2).decode())
        return self._key, start, end, text
