"""Redacting answers as the client gets them: a converter at the end of the route's chain.

A buffered answer (a JSON body, fed whole) is redacted field by field. A stream is
redacted event by event: each text field (per choice or content block: the text, the
reasoning, a refusal, each tool call's arguments) has its own `Redacting`, which holds
back only the unsettled end of what it has seen, at most the policy's longest match; each event
goes out with its field replaced by what is settled, well-formed and of its own type.
What a field still holds is sent in one more event of the same shape just before the
event that ends the field (OpenAI: the chunk with the choice's `finish_reason`, or
`[DONE]`; Anthropic: `content_block_stop`), or when the stream ends. When the pieces
that end a field come in the read that ends it, nothing is held back; when a read ends
the stream while nothing is held, it is checked whole first (redaction/final_reads.py).

Signed thinking blocks sent whole (OpenAI `thinking_blocks`) are redacted whole; the
signature then no longer matches, which the provider refuses if the client sends the
block back: the price of not leaking what the reasoning quoted. OpenAI `logprobs`
are nulled: their tokens spell the text piece by piece, past any redaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

import orjson

from converters.sse import SSEFramer
from redaction.final_reads import final_texts
from redaction.policy import Policy
from redaction.requests import redact_strings
from redaction.scanner import Redacting
from redaction.text_deltas import ANTHROPIC_TEXT_DELTAS, OPENAI_TEXT_FIELDS, Delta, End, TextDeltas, Textless

_CHUNK_KEYS = ("id", "object", "created", "model", "system_fingerprint")  # what a flushed chunk repeats
_GROUP = 16  # events of one read whose pieces are tried together on the scanner's fast path


class AnswerRedactor:
    """A StreamConverter (converters/base.py) for one answer in the client's `client_format`.

    `counted` is told the kind of every match replaced: those of a chunk when the next one
    comes, or at the end. A hedged try that lost the client with that chunk is not called
    again, so only the answer the client got is counted.
    """

    __slots__ = ("_policy", "_format", "_counted", "_found", "_mode", "_body", "_framer", "_fields", "_last",
                 "_latest", "_deltas")

    def __init__(self, policy: Policy, client_format: str, counted: Callable[[str], None]) -> None:
        self._policy = policy
        self._format = client_format
        self._counted = counted
        self._found: list[str] = []
        self._mode = ""  # "json" or "sse", from the first byte
        self._body: list[bytes] = []
        self._framer = SSEFramer()
        self._fields: dict[tuple[Any, ...], Redacting] = {}
        self._last: dict[str, Any] = {}  # OpenAI: the latest chunk (its id, model, created)
        self._latest = b""  # or that chunk's event, unparsed (the fast path's)
        self._deltas = TextDeltas(client_format == "anthropic")

    def feed(self, data: bytes) -> bytes:
        if self._found:
            self._report()  # what the last chunk replaced: it went to the client, or this is not called
        if not self._mode:
            head = data.lstrip()
            if not head:
                return data
            self._mode = "json" if head[:1] == b"{" else "sse"
        if self._mode == "json":
            self._body.append(data)
            return b""
        events = self._framer.feed(data)
        return self._events(events) if events else b""

    def close(self) -> bytes:
        if self._mode == "json":
            out = self._buffered(b"".join(self._body))
        elif self._mode == "sse":
            out = self._events(self._framer.close()) + self._flush(None)
        else:
            out = b""
        self._report()
        return out

    def cut(self) -> bytes:
        """The upstream failed mid-stream: what the fields hold back, through the scanner's
        `cut` (a secret's start cut short becomes `[REDACTED:kind:partial]`), in events of
        their own shape, for the client to have before the error event. An event the cut
        left unfinished is dropped, and nothing is ended."""
        out = self._flush(None, cut=True) if self._mode == "sse" else b""
        self._report()
        return out

    # -- buffered answers --------------------------------------------------------------

    def _buffered(self, body: bytes) -> bytes:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(answer, dict):
            return body
        found = self._found
        redact = self._policy.scanner.redact
        if self._format == "anthropic":
            for block in answer.get("content") or ():
                if not isinstance(block, dict):
                    continue
                for name in ("text", "thinking"):
                    if isinstance(block.get(name), str):
                        block[name] = redact(block[name], found)
                if block.get("type") == "tool_use" and "input" in block:
                    block["input"] = redact_strings(block["input"], self._policy, found)
        else:
            dropped = False
            for choice in answer.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                dropped |= _drop_logprobs(choice)
                message = choice.get("message")
                if isinstance(message, dict):
                    self._openai_fields(message, found)
            if dropped and not found:
                return orjson.dumps(answer)
        if not found:
            return body
        return orjson.dumps(answer)

    def _openai_fields(self, message: dict[str, Any], found: list[str]) -> None:
        """A whole message's text fields (a buffered answer's message, or a delta's whole blocks)."""
        redact = self._policy.scanner.redact
        for name in OPENAI_TEXT_FIELDS:
            if isinstance(message.get(name), str):
                message[name] = redact(message[name], found)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                function["arguments"] = redact(function["arguments"], found)
        for block in message.get("thinking_blocks") or ():
            if isinstance(block, dict) and isinstance(block.get("thinking"), str):
                block["thinking"] = redact(block["thinking"], found)

    # -- streams -----------------------------------------------------------------------

    def _events(self, framed: bytes) -> bytes:
        """The whole events of one upstream chunk, redacted.

        The chunk's pieces of each field are redacted together (one pass over them, not
        one per event): the last event carrying the field gets what is settled, the
        earlier ones an empty string. An event nothing changed goes out as it came.
        Events the fast paths know (text pieces, textless events: text_deltas.py) are not
        parsed; the others are, a stretch of them at a time.
        """
        if not framed:
            return b""
        if framed.find(b"\r") >= 0:
            framed = framed.replace(b"\r\n", b"\n")
        if framed.find(b"\n\n") == len(framed) - 2:  # one event, the usual read of a stream
            plain = self._one(framed)
            if plain is not None:
                return plain
        else:
            plain = self._run(framed)
            if plain is not None:
                return plain
        if not self._fields:  # nothing held: a read that ends the stream may be checked whole
            texts = final_texts(framed, self._format == "anthropic")
            if texts is not None and all(map(self._policy.scanner.clean, texts)):
                return framed
        raws = framed.split(b"\n\n")
        if not raws[-1]:
            raws.pop()
        deltas = self._deltas
        kinds = [deltas.read(raw) or deltas.textless(raw) for raw in raws]
        out, at, count = [], 0, len(raws)
        while at < count:
            kind, stop = kinds[at], at + 1
            if kind is None:
                while stop < count and kinds[stop] is None:
                    stop += 1
                out.append(self._parsed(raws[at:stop]))
            elif type(kind) is Textless:
                out.append(self._textless(raws[at], kind))
            else:
                key = kind[0]
                while stop < count and type(kinds[stop]) is tuple and kinds[stop][0] == key:  # type: ignore[index]
                    stop += 1
                ender = kinds[stop] if stop < count else None
                # The field ends right after its pieces: they are its last, nothing is held back.
                final = type(ender) is Textless and ender.ends in (End.EVERY, key[0])  # type: ignore[union-attr]
                out.append(self._pieces(raws[at:stop], kinds[at:stop], final))  # type: ignore[arg-type]
            at = stop
        return b"".join(out)

    def _textless(self, raw: bytes, kind: Textless) -> bytes:
        """An event that carries no text (with its blank line), after what the fields it ends hold back."""
        if self._format == "openai" and kind.ends is not End.EVERY:
            self._latest = raw
        if kind.ends is End.NOTHING:
            return raw + b"\n\n"
        return self._flush(None if kind.ends is End.EVERY else kind.ends) + raw + b"\n\n"

    def _parsed(self, raws: list[bytes]) -> bytes:
        """Events parsed as JSON: those the fast path cannot be sure of."""
        batch = _Batch()
        out: list[bytes | _Event] = []
        for raw in raws:
            if not raw.strip():
                continue
            event = _Event.parse(raw)
            if event.done:
                out.append(self._settle(batch, None))
                out.append(self._flush(None))
            elif event.parsed is not None:
                ending = (self._anthropic(event, batch) if self._format == "anthropic"
                          else self._openai(event, batch))
                for index in ending:
                    out.append(self._settle(batch, index))
                    out.append(self._flush(index))
            out.append(event)
        self._settle(batch, False)
        return b"".join(part if isinstance(part, bytes) else part.encoded() for part in out)

    def _one(self, framed: bytes) -> bytes | None:
        """`_pieces` for a chunk of one event (with its blank line)."""
        raw = framed[:-2]
        delta = self._deltas.read(raw)
        if delta is None:
            kind = self._deltas.textless(raw)
            return None if kind is None else self._textless(raw, kind)
        key, start, end, piece = delta
        field = self._fields.get(key) or self._field(key)
        if self._format == "openai":
            self._latest = framed[:-2]
        mine = field.feed(piece)
        return framed if mine == piece else framed[:start] + orjson.dumps(mine)[1:-1] + framed[end:]

    def _run(self, framed: bytes) -> bytes | None:
        """`_pieces` for a chunk of events that differ from the last one read only in their
        text (TextDeltas.read_run), found with one split: a group of them that the scanner's
        fast path settles goes out as one slice of the chunk, but for its first event
        (which also carries the text held before it) and its last ones (which hold some
        of theirs back)."""
        run = self._deltas.read_run(framed)
        if run is None:
            return None
        key, head, tail, values, texts = run
        field = self._fields.get(key) or self._field(key)
        frame = len(head) + len(tail)
        offsets = [0, *accumulate(frame + len(value) for value in values)]
        if self._format == "openai":
            self._latest = framed[offsets[-2] : -2]

        def event(text: str) -> bytes:
            return head + orjson.dumps(text)[1:-1] + tail

        out: list[bytes] = []
        for first in range(0, len(texts), _GROUP):
            last = min(first + _GROUP, len(texts))
            before, text = field.unsent, "".join(texts[first:last])
            settled = field.quietly(text)
            if settled is None:
                for i in range(first, last):
                    mine = field.feed(texts[i])
                    out.append(framed[offsets[i] : offsets[i + 1]] if mine == texts[i] else event(mine))
                continue
            whole = before + text
            held, kept, after = len(whole) - len(settled), last, 0  # from `kept` on, text is held
            while kept > first and after < held:
                kept -= 1
                after += len(texts[kept])
            start = offsets[first]
            if kept > first and before:  # the first event also carries what was held before it
                out.append(event(before + texts[first]))
                start = offsets[first + 1]
            out.append(framed[start : offsets[kept]])
            at = len(whole) - after if kept > first else 0  # where the first held one's share begins
            for i in range(kept, last):
                out.append(event(whole[at : len(settled)] if i == kept and len(settled) > at else ""))
        return b"".join(out)

    def _pieces(self, raws: list[bytes], deltas: list[Delta], final: bool = False) -> bytes:
        """Events that each carry one piece of the same field, not parsed: an event gets what
        of the text is settled when its piece arrives, and one that gets its own piece goes
        out as it came. Up to _GROUP pieces at a time are first tried together on the
        scanner's fast path (redaction/scanner.py), which replaces nothing; a group that it
        cannot settle is fed one piece at a time. `final`: these are the field's last
        pieces, so the fast path holds nothing back and the field is done with."""
        key = deltas[0][0]
        field = self._fields.get(key) or self._field(key)
        if self._format == "openai":
            self._latest = raws[-1]
        out: list[bytes] = []
        for first in range(0, len(deltas), _GROUP):
            group = zip(raws[first : first + _GROUP], deltas[first : first + _GROUP], strict=True)
            last = first + _GROUP >= len(deltas)
            if len(deltas) - first > 1 or (final and last):
                before = field.unsent
                text = "".join(delta[3] for delta in deltas[first : first + _GROUP])
                settled = field.quietly(text, final and last)
                if settled is not None:
                    if final and last:
                        del self._fields[key]
                    if not before and len(settled) == len(text):  # every event keeps its own piece
                        out.extend(raws[first : first + _GROUP])
                    else:
                        _share(group, before + text, len(before), len(settled), out)
                    continue
            for raw, (_, start, end, piece) in group:
                mine = field.feed(piece)
                out.append(raw if mine == piece else raw[:start] + orjson.dumps(mine)[1:-1] + raw[end:])
        out.append(b"")
        return b"\n\n".join(out)

    def _openai(self, event: _Event, batch: _Batch) -> list[Any]:
        """Gathers a chunk's text pieces; returns the choices it ends (its finish_reason)."""
        chunk = event.parsed
        assert chunk is not None
        self._last, self._latest = chunk, b""
        ending = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            event.changed |= _drop_logprobs(choice)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for name in OPENAI_TEXT_FIELDS:
                    batch.gather(event, (index, name), delta, name)
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        batch.gather(event, (index, "tool", call.get("index", 0)), function, "arguments")
                if delta.get("thinking_blocks"):
                    count = len(self._found)
                    self._openai_fields({"thinking_blocks": delta["thinking_blocks"]}, self._found)
                    event.changed |= len(self._found) != count
            if choice.get("finish_reason") is not None:
                ending.append(index)
        return ending

    def _anthropic(self, event: _Event, batch: _Batch) -> list[Any]:
        """Gathers a content block's text piece; returns the blocks the event ends (all: None)."""
        parsed = event.parsed
        assert parsed is not None
        kind = parsed.get("type")
        index = parsed.get("index", 0)
        if kind == "content_block_delta":
            delta = parsed.get("delta")
            name = ANTHROPIC_TEXT_DELTAS.get(delta.get("type")) if isinstance(delta, dict) else None
            if name is not None:
                batch.gather(event, (index, delta["type"]), delta, name)
        elif kind == "content_block_stop":
            return [index]
        elif kind == "message_stop":
            return [None]
        return []

    def _settle(self, batch: _Batch, index: Any) -> bytes:
        """Redact the gathered pieces of the fields of choice (or block) `index` (all: None),
        ending those fields; `False`: of every field, which go on. Returns b"" (for the
        caller's list); the pieces are written back into their events."""
        for key in [k for k in batch.pieces if index is False or index is None or k[0] == index]:
            places = batch.pieces.pop(key)
            text = "".join(container[name] for _, container, name in places)
            if index is False:
                redacted = self._field(key).feed(text)
            else:
                field = self._fields.pop(key, None) or self._policy.scanner.stream(self._found)
                redacted = field.feed(text) + field.close()
            for at, (event, container, name) in enumerate(places):
                value = redacted if at == len(places) - 1 else ""
                if container[name] != value:
                    container[name] = value
                    event.changed = True
        return b""

    def _field(self, key: tuple[Any, ...]) -> Redacting:
        field = self._fields.get(key)
        if field is None:
            field = self._fields[key] = self._policy.scanner.stream(self._found)
        return field

    def _flush(self, index: Any, cut: bool = False) -> bytes:
        """Events carrying what the fields of choice (or block) `index` hold back (all: None);
        `cut`: the text ends there cut short."""
        keys = [key for key in self._fields if index is None or key[0] == index]
        if not keys:
            return b""
        out = []
        if self._format == "anthropic":
            for key in keys:
                field = self._fields.pop(key)
                text = field.cut() if cut else field.close()
                spliced = self._deltas.event(key, text) if text else None
                if spliced is not None:
                    out.append(spliced + b"\n\n")
                elif text:
                    name = ANTHROPIC_TEXT_DELTAS[key[1]]
                    event = {"type": "content_block_delta", "index": key[0],
                             "delta": {"type": key[1], name: text}}
                    out.append(b"event: content_block_delta\ndata: " + orjson.dumps(event) + b"\n\n")
        else:
            by_choice: dict[Any, dict[str, Any]] = {}
            for key in keys:
                field = self._fields.pop(key)
                text = field.cut() if cut else field.close()
                if not text:
                    continue
                spliced = self._deltas.event(key, text)  # the last text event again, with this text
                if spliced is not None:
                    out.append(spliced + b"\n\n")
                    continue
                delta = by_choice.setdefault(key[0], {})
                if key[1] == "tool":
                    call = {"index": key[2], "function": {"arguments": text}}
                    delta.setdefault("tool_calls", []).append(call)
                else:
                    delta[key[1]] = text
            if by_choice and self._latest:  # the latest chunk came by the fast path: read it now
                data = self._latest[self._latest.find(b"data:") + 5 :]
                self._last, self._latest = orjson.loads(data), b""
            for choice, delta in by_choice.items():
                chunk = {k: self._last[k] for k in _CHUNK_KEYS if k in self._last}
                chunk["choices"] = [{"index": choice, "delta": delta, "finish_reason": None}]
                out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
        return b"".join(out)

    def _report(self) -> None:
        for kind in self._found:
            self._counted(kind)
        self._found.clear()


def _drop_logprobs(choice: dict[str, Any]) -> bool:
    """Null a choice's logprobs: their tokens spell the text piece by piece, past any redaction."""
    if choice.get("logprobs") is None:
        return False
    choice["logprobs"] = None
    return True


def _share(
    group: Iterable[tuple[bytes, Delta]], whole: str, edge: int, settled: int, out: list[bytes]
) -> None:
    """Events whose pieces were settled together, nothing replaced: each gets its share of
    `whole` (the text held before them, `edge` characters, then their pieces) up to
    `settled`; one whose share is its own piece goes out as it came."""
    at = 0
    for raw, (_, start, end, piece) in group:
        begins, edge = edge, edge + len(piece)
        upto = min(edge, settled)
        if at == begins and upto == edge:
            out.append(raw)
        else:
            mine = whole[at:upto] if upto > at else ""
            out.append(raw[:start] + orjson.dumps(mine)[1:-1] + raw[end:])
        at = max(at, upto)


class _Event:
    """One SSE event of the stream: its lines, and its parsed data when that is JSON."""

    __slots__ = ("raw", "lines", "parsed", "done", "changed")

    def __init__(self, raw: bytes, lines: list[bytes], parsed: dict[str, Any] | None, done: bool) -> None:
        self.raw = raw
        self.lines = lines
        self.parsed = parsed
        self.done = done
        self.changed = False

    @classmethod
    def parse(cls, raw: bytes) -> _Event:
        lines = raw.split(b"\n")
        data = [line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return cls(raw, lines, None, False)
        payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            return cls(raw, lines, None, True)
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return cls(raw, lines, None, False)
        return cls(raw, lines, parsed if isinstance(parsed, dict) else None, False)

    def encoded(self) -> bytes:
        """The event with its blank line: as it came, or its data line re-encoded (the
        other lines, event: and id:, kept)."""
        if not self.changed or self.parsed is None:
            return self.raw + b"\n\n"
        kept = [line for line in self.lines if not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + orjson.dumps(self.parsed)]) + b"\n\n"


class _Batch:
    """The text pieces of one chunk's events, by field, with where each came from."""

    __slots__ = ("pieces",)

    def __init__(self) -> None:
        self.pieces: dict[tuple[Any, ...], list[tuple[_Event, dict[str, Any], str]]] = {}

    def gather(self, event: _Event, key: tuple[Any, ...], container: dict[str, Any], name: str) -> None:
        if isinstance(container.get(name), str) and container[name]:
            self.pieces.setdefault(key, []).append((event, container, name))
