"""Streamed chat answers between Anthropic Messages events and OpenAI chat.completion.chunks.

Both converters take upstream bytes cut anywhere, frame them into whole SSE events
(each parsed once), and keep just enough state to translate the event sequence.
Their output depends only on the upstream bytes, never on how they were split: ids
come from upstream ids and `created` is fixed when the converter is made.

An upstream error event ends the client stream as that format's error event. A stream
that ends without its final events is still closed well-formed by close(); one that
never started closes empty, so the handler can treat it as an empty answer.
"""

from __future__ import annotations

import re
import time
from types import MappingProxyType
from typing import Any

import orjson

from converters.base import Context
from converters.chat_mapping import (
    FINISH_REASONS,
    anthropic_error,
    anthropic_tool_id,
    anthropic_usage,
    finish_reason,
    openai_error,
    openai_reasoning,
    openai_usage_json,
    stop_reason,
    take_openai_usage,
)
from converters.plain_events import (
    ASCII_TEXT_DELTA_END,
    PLAIN_TEXT,
    QUIET,
    TEXT_DELTA_HEAD,
    TEXT_DELTA_HEAD_SIZE,
    TEXT_DELTA_HEADS,
    plain_run,
    utf8,
)
from converters.sse import SSEDataReader, payloads
from converters.usage import Usage, asks_for_usage

_DONE = b"data: [DONE]\n\n"
_NOT_FINISHED = b',"logprobs":null,"finish_reason":null}]}\n\n'
_ROLE = b'{"role":"assistant","content":""}'
_TEXT_END = b'"}' + _NOT_FINISHED
# One plain event (converters/plain_events.py) alone, as each read of a trickled stream is:
# group 1 a text delta's text.
_PLAIN_EVENT = re.compile(rb"(?:" + TEXT_DELTA_HEAD + rb"(" + PLAIN_TEXT + rb')"\}\}|' + QUIET + rb")\n\n")
# The end of a started stream as Anthropic writes it: nothing in it to parse.
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}'
_MESSAGE_DELTA_LINE = b"event: message_delta\n"
_MESSAGE_START_LINE = b"event: message_start\n"
# The usual message_delta as Anthropic writes it (no stop sequence, usage its output tokens alone),
# up to its last colon, by the stop reason it gives; after the colon, _OUTPUT_TOKENS (a count that
# parses: no leading zero, and at most 15 digits, so below usage's bound of 2**53) and its end.
_MESSAGE_DELTAS = MappingProxyType({
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"%s","stop_sequence":null},'
    b'"usage":{"output_tokens"' % reason.encode(): reason for reason in FINISH_REASONS})
_OUTPUT_TOKENS = re.compile(rb"(0|[1-9][0-9]{0,14})\}\}")


class _EventConversion:
    """Feeding and closing shared by both directions: whole events to `_convert`, and a
    well-formed end (`_finish`) when the upstream stopped without its final events."""

    __slots__ = ()
    _reader: SSEDataReader | None  # made at the first read that is not whole events, LF-ended
    _ended: bool
    _started: bool

    def feed(self, data: bytes) -> bytes:
        if self._ended:
            return b""
        reader = self._reader
        if reader is None:
            if data[-2:] == b"\n\n" and data.find(b"\r") < 0:  # what the reader would pass on as it is
                return self._convert(data)
            reader = self._reader = SSEDataReader()
        events = reader.events(data)
        return self._convert(events) if events else b""

    def close(self) -> bytes:
        if self._ended:  # the stream ended whole, as most do: nothing is left to send
            return b""
        out = self._convert(self._reader.close_events()) if self._reader is not None else b""
        if self._started and not self._ended:
            out += self._finish()
        return out

    def _convert(self, events: bytes) -> bytes:
        """Whole events (LF line ends, each ended by its blank line) to what the client gets."""
        raise NotImplementedError

    def _finish(self) -> bytes:
        raise NotImplementedError


class AnthropicToOpenAIStream(_EventConversion):
    """Anthropic SSE events in, OpenAI chat.completion.chunk events out.

    Tool calls are numbered 0, 1, ... in the order their tool_use blocks start,
    whatever the Anthropic block index. Thinking streams as `reasoning_content`; once a
    thinking block is signed (or a redacted one starts) it is sent whole as an entry of
    `thinking_blocks`, indexed so that SDK stream accumulators gather them, for clients
    to send back in a tool loop (see chat_requests).

    Most of a stream is text deltas: plain ones (converters/plain_events.py) are spliced
    into chunks without parsing or encoding JSON, and a read that is one plain event (a
    trickled stream's every read) before any framing; every other event is parsed.
    """

    __slots__ = ("usage", "_reader", "_model", "_created", "_include_usage", "_head", "_delta_head",
                 "_text_head", "_text_join", "_tools", "_thinking", "_signed", "_stop_reason", "_ended")

    def __init__(self, ctx: Context, created: int | None = None) -> None:
        self.usage = Usage()
        self._reader: SSEDataReader | None = None
        self._model = orjson.dumps(ctx.model)
        self._created = int(time.time()) if created is None else created
        self._include_usage = asks_for_usage(ctx.client_request)
        self._head = b""  # every chunk's bytes up to its choices, set when the stream starts
        self._delta_head = b""  # the same, on to the delta of choice 0
        self._text_head = b""  # the same, on into the delta's content string
        self._text_join = b""  # what goes between the texts of two text chunks
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._thinking: dict[int, list[str]] = {}  # Anthropic block index -> thinking text so far
        self._signed = 0  # thinking_blocks entries sent
        self._stop_reason: object = None
        self._ended = False

    @property
    def _started(self) -> bool:
        return bool(self._head)

    def feed(self, data: bytes) -> bytes:
        reader = self._reader
        if self._text_head and data[:TEXT_DELTA_HEAD_SIZE] in TEXT_DELTA_HEADS:
            plain = ASCII_TEXT_DELTA_END.fullmatch(data, TEXT_DELTA_HEAD_SIZE)
            if plain is not None and (reader is None or reader.idle):  # the usual text delta, ASCII, alone
                return self._text_head + plain[1] + _TEXT_END
        if self._text_head and (reader is None or reader.idle):
            plain = _PLAIN_EVENT.fullmatch(data)
            if plain is not None:  # one event, as a trickled stream's every read: spliced, not framed
                text = plain[1]  # None for a quiet event; not UTF-8: dropped, as parsing does
                return self._text_head + text + _TEXT_END if text and (data.isascii() or utf8(text)) else b""
        return _EventConversion.feed(self, data)

    def _convert(self, events: bytes) -> bytes:
        out: list[bytes] = []
        pieces = events.split(b"\n\n")
        index, end = 0, len(pieces) - 1  # the last piece is what follows the last blank line: nothing
        while index < end:
            if self._text_head:
                if pieces[index] == _MESSAGE_STOP:  # as parsing it would end (_event), sooner
                    out.append(self._finish())
                    break
                texts, index = plain_run(pieces, index, end)
                if texts:
                    out.append(self._text_head + self._text_join.join(texts) + _TEXT_END)
                if index == end:
                    break
            event = pieces[index]
            index += 1
            line = event[:21]  # as long as the line of a message_delta, and of a message_start
            if line == _MESSAGE_DELTA_LINE and self._message_delta(event):
                continue
            if line == _MESSAGE_START_LINE and event[21:27] == b"data: " and event.find(b"\n", 27) < 0:
                lone = event[27:]  # what _lone_data would give (but a space orjson skips), for less
            else:
                lone = _lone_data(event)
            for payload in payloads(event) if lone is None else (lone,):
                if not self._event(payload, out):
                    return b"".join(out)
        return b"".join(out)

    def _event(self, payload: bytes, out: list[bytes]) -> bool:
        """One event's payload converted into `out`; False when it ended the stream."""
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(event, dict):
            return True
        kind = event.get("type")
        if kind == "content_block_delta":
            self._delta(event, out)
        elif kind == "content_block_start":
            self._block_start(event, out)
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self._stop_reason = delta["stop_reason"]
            if isinstance(event.get("usage"), dict):
                self.usage.add_anthropic(event["usage"])
        elif kind == "message_start":
            message = event.get("message") if isinstance(event.get("message"), dict) else {}
            if isinstance(message.get("usage"), dict):
                self.usage.add_anthropic(message["usage"])
            self._start(message.get("id"), out)
        elif kind == "message_stop":
            self._start(None, out)
            out.append(self._finish())
            return False
        elif kind == "error":
            out.append(b"data: " + orjson.dumps(openai_error(event.get("error"))) + b"\n\n")
            self._ended = True
            return False
        return True

    def _message_delta(self, event: bytes) -> bool:
        """Whether `event` is the usual message_delta (see _MESSAGE_DELTAS), taken as parsing
        would take it (_event): its stop reason, and its usage's output tokens alone."""
        head, _, rest = event.rpartition(b":")
        reason = _MESSAGE_DELTAS.get(head)
        count = _OUTPUT_TOKENS.fullmatch(rest) if reason is not None else None
        if count is None:
            return False
        self._stop_reason = reason
        self.usage.add_anthropic_output(int(count[1]))
        return True

    def _start(self, message_id: object, out: list[bytes]) -> None:
        """Fix the chunk head and send the role chunk, once, before any content."""
        if self._head:
            return
        chunk_id = message_id if isinstance(message_id, str) and message_id else "chatcmpl-unknown"
        self._head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,"choices":' % (
            orjson.dumps(chunk_id), self._created, self._model)
        self._delta_head = self._head + b'[{"index":0,"delta":'
        self._text_head = self._delta_head + b'{"content":"'
        self._text_join = _TEXT_END + self._text_head
        out.append(self._delta_head + _ROLE + _NOT_FINISHED)

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        return self._delta_head + orjson.dumps(delta) + _NOT_FINISHED

    def _block_start(self, event: dict[str, Any], out: list[bytes]) -> None:
        self._start(None, out)
        block = event.get("content_block")
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and block.get("text"):
            out.append(self._chunk({"content": block["text"]}))
        elif kind == "thinking":
            text = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
            self._thinking[event.get("index")] = [text]
            if text:
                out.append(self._chunk({"reasoning_content": text}))
        elif kind == "redacted_thinking":
            self._thinking_block({"type": "redacted_thinking", "data": block.get("data") or ""}, out)
        elif kind == "tool_use":
            number = len(self._tools)
            self._tools[event.get("index")] = number
            arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
            out.append(self._chunk({"tool_calls": [{
                "index": number, "id": block.get("id") or f"toolu_{number}", "type": "function",
                "function": {"name": block.get("name") or "", "arguments": arguments},
            }]}))

    def _delta(self, event: dict[str, Any], out: list[bytes]) -> None:
        delta = event.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta":
            text = delta.get("text")
            if text:
                self._start(None, out)
                out.append(self._chunk({"content": text}))
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json")
            number = self._tools.get(event.get("index"))
            if fragment and number is not None:
                call = {"index": number, "function": {"arguments": fragment}}
                out.append(self._chunk({"tool_calls": [call]}))
        elif kind == "thinking_delta":
            thinking = delta.get("thinking")
            if isinstance(thinking, str) and thinking:
                self._start(None, out)
                self._thinking.setdefault(event.get("index"), []).append(thinking)
                out.append(self._chunk({"reasoning_content": thinking}))
        elif kind == "signature_delta":
            text = "".join(self._thinking.pop(event.get("index"), ()))
            signature = delta.get("signature") or ""
            self._thinking_block({"type": "thinking", "thinking": text, "signature": signature}, out)

    def _thinking_block(self, block: dict[str, Any], out: list[bytes]) -> None:
        self._start(None, out)
        out.append(self._chunk({"thinking_blocks": [{"index": self._signed, **block}]}))
        self._signed += 1

    def _finish(self) -> bytes:
        """The finish chunk, the usage chunk if the client asked for it, and [DONE]."""
        self._ended = True
        reason = finish_reason(self._stop_reason).encode()
        out = self._delta_head + b'{},"logprobs":null,"finish_reason":"' + reason + b'"}]}\n\n'
        if self._include_usage:
            out += self._head + b'[],"usage":' + openai_usage_json(self.usage) + b"}\n\n"
        return out + _DONE


class OpenAIToAnthropicStream(_EventConversion):
    """OpenAI chat.completion.chunk events in, Anthropic Messages events out.

    reasoning_content opens a thinking block, content a text block, and each tool call
    index a tool_use block; switching between them closes the open block first. The
    message_delta waits for [DONE] (or close()) so that the usage chunk, which follows
    the finish_reason chunk, can ride on it.
    """

    __slots__ = ("usage", "_reader", "_model", "_client_request", "_id", "_open", "_open_kind",
                 "_delta_prefix", "_blocks", "_tool_blocks", "_finish_reason", "_matched", "_refused",
                 "_started", "_ended")

    def __init__(self, ctx: Context) -> None:
        self.usage = Usage()
        self._reader: SSEDataReader | None = None
        self._model = ctx.model
        self._client_request = ctx.client_request
        self._id = "msg_unknown"
        self._open: int | None = None  # the Anthropic index of the open content block
        self._open_kind = ""  # "thinking", "text" or "tool"
        self._delta_prefix = b""  # a content_block_delta of the open text or thinking block, up to its text
        self._blocks = 0  # content blocks started so far
        self._tool_blocks: dict[int, tuple[int, str]] = {}  # OpenAI tool call index -> (block index, id)
        self._finish_reason: object = None
        self._matched: object = None  # the stop string vLLM-style providers report
        self._refused = False
        self._started = False
        self._ended = False


    def _convert(self, events: bytes) -> bytes:
        out: list[bytes] = []
        for payload in payloads(events):
            if payload == b"[DONE]":
                if self._started:
                    out.append(self._finish())
                    break
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                out.append(b"event: error\ndata: " + orjson.dumps(anthropic_error(chunk["error"])) + b"\n\n")
                self._ended = True
                break
            usage = chunk.get("usage")
            if usage and isinstance(usage, dict):
                take_openai_usage(self.usage, usage)
            if not self._started:
                self._start(chunk.get("id"), out)
            for choice in chunk.get("choices") or ():
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._choice(choice, out)
        return b"".join(out)

    def _start(self, chunk_id: object, out: list[bytes]) -> None:
        self._started = True
        if isinstance(chunk_id, str) and chunk_id:
            self._id = chunk_id
        out.append(_event(b"message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": anthropic_usage(self.usage),
        }}))

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if delta and isinstance(delta, dict):
            reasoning = openai_reasoning(delta)
            if reasoning:
                self._text("thinking", reasoning, out)
            content = delta.get("content")
            if content and isinstance(content, str):
                self._text("text", content, out)
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                self._refused = True
                self._text("text", refusal, out)
            calls = delta.get("tool_calls")
            if calls and isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        self._tool_call(call, out)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            self._matched = choice.get("stop_reason")
            self._close_block(out)

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        """A thinking or text fragment, opening a block of that kind if another one is open."""
        if self._open_kind != kind:
            self._close_block(out)
            if kind == "thinking":
                index = self._open_block(kind, {"type": "thinking", "thinking": "", "signature": ""}, out)
                field = b'"thinking_delta","thinking":'
            else:
                index = self._open_block(kind, {"type": "text", "text": ""}, out)
                field = b'"text_delta","text":'
            self._delta_prefix = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                                  + str(index).encode() + b',"delta":{"type":' + field)
        out.append(self._delta_prefix + orjson.dumps(text) + b"}}\n\n")

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        """A tool call fragment. A call starts at a new index, or at a known index with a
        new id (providers that number every call 0); later fragments carry no id."""
        number = call.get("index", 0)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        call_id = call.get("id") if isinstance(call.get("id"), str) else ""
        block, known_id = self._tool_blocks.get(number, (None, ""))
        if block is None or (call_id and call_id != known_id):
            self._close_block(out)
            tool_id = anthropic_tool_id(call_id or f"toolu_{self._id}_{number}")
            block = self._open_block("tool", {"type": "tool_use", "id": tool_id,
                                              "name": function.get("name") or "", "input": {}}, out)
            self._tool_blocks[number] = (block, call_id)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few providers send the arguments as an object
            arguments = orjson.dumps(arguments).decode()
        if isinstance(arguments, str) and arguments:
            # A fragment for an earlier, already closed call (providers that interleave)
            # still goes to its own block index, where Anthropic SDKs accumulate it.
            out.append(_event(b"content_block_delta", {"type": "content_block_delta", "index": block,
                                                        "delta": {"type": "input_json_delta",
                                                                  "partial_json": arguments}}))

    def _open_block(self, kind: str, block: dict[str, Any], out: list[bytes]) -> int:
        index = self._blocks
        self._blocks += 1
        self._open, self._open_kind = index, kind
        out.append(_event(b"content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": block}))
        return index

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
                       + str(self._open).encode() + b"}\n\n")
            self._open, self._open_kind = None, ""

    def _finish(self) -> bytes:
        """Close the open block, then message_delta (stop reason, usage) and message_stop."""
        self._ended = True
        out: list[bytes] = []
        self._close_block(out)
        if self._refused:
            reason, sequence = "refusal", None
        else:
            reason, sequence = stop_reason(self._finish_reason, self._matched, self._client_request,
                                           bool(self._tool_blocks))
        out.append(_event(b"message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                              "usage": anthropic_usage(self.usage)}))
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return b"".join(out)


def _lone_data(event: bytes) -> bytes | None:
    """The payload of `event` (its blank line left out) when it is the usual one: perhaps an
    `event:` line, then one `data:` line. None for any other shape, which `payloads` reads.
    (Partitions and slices: bytes.startswith and find parse their arguments, at a cost.)"""
    line, newline, rest = event.partition(b"\n")
    if line[:6] == b"event:":
        if not newline:
            return None
        line, newline, rest = rest.partition(b"\n")
    if newline or line[:5] != b"data:":
        return None
    return line[5:]


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"
