"""A tool loop's round, streamed to a client that asked for a stream: its text and reasoning
reach the client as they come, under the first round's response id; its MCP tool calls and its
end (finish chunk, usage, `[DONE]`; Anthropic's message_delta and message_stop) do not, since
the loop goes on or ends the stream itself. The whole answer is rebuilt for the loop
(handlers/tool_loop.py), in the client's format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from converters.sse import SSEDataReader
from handlers.tool_turns import as_stream
from upstream.attempt import Head, StandIn

if TYPE_CHECKING:
    from handlers.chat import ChatHandler

STREAM_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"))


class StreamShared:
    """What the rounds of one streamed request share: the response id the client sees, whether
    the stream's start went out, and (Anthropic) how many content blocks it holds."""

    __slots__ = ("response_id", "started", "blocks")

    def __init__(self) -> None:
        self.response_id: Any = None
        self.started = False
        self.blocks = 0


class RoundStream(StandIn):
    """The sink of one streamed round (see the module docstring). Bytes of the round that reach
    the client commit it: a failure after them ends the stream, before them the walk falls back."""

    client: ChatHandler

    def __init__(
        self, client: ChatHandler, fmt: str, owns: Callable[[str], bool], shared: StreamShared
    ) -> None:
        super().__init__(client)
        self.fmt = fmt
        self.owns = owns
        self.shared = shared
        self.reader = SSEDataReader()
        self.whole = False  # the upstream answered JSON although asked for a stream
        self.relayed = False
        self.error = False  # an error event was relayed: the stream ends with it
        self.answer: dict[str, Any] = {}
        self._calls: dict[int, dict[str, Any]] = {}  # OpenAI tool calls by the upstream's index
        self._client_index: dict[int, int] = {}  # OpenAI: the client's own calls, renumbered
        self._blocks: dict[int, dict[str, Any]] = {}  # Anthropic content blocks by index
        self._partial: dict[int, str] = {}  # Anthropic tool_use input JSON, by block index
        self._shown: dict[int, int] = {}  # Anthropic: block index → the index the client sees

    # -- the Sink an attempt writes to --------------------------------------------------

    @property
    def committed(self) -> bool:
        return self.relayed

    @property
    def over(self) -> bool:
        return self.client.over

    def begin(self, head: Head) -> None:
        self.whole = "text/event-stream" not in dict(head.headers).get("Content-Type", "")

    def send(self, data: bytes) -> None:
        for payload in self.reader.feed(data):
            self._event(payload)

    def end(self, data: bytes) -> None:
        if self.whole:  # a whole JSON answer: read as the stream it stands for
            try:
                whole = orjson.loads(data)
            except orjson.JSONDecodeError:
                return
            if isinstance(whole, dict):
                self.send(as_stream(whole, self.fmt, True))
            return
        self.send(data)
        for payload in self.reader.close():
            self._event(payload)

    def end_stream(self, label: str, kind: str, message: str) -> None:
        self.client.end_stream(label, kind, message)

    # -- the round's events -------------------------------------------------------------

    def whole_answer(self) -> dict[str, Any] | None:
        """The round's answer as one JSON answer of the client's format; None when it sent none."""
        if not self.answer:
            return None
        if self.fmt == "anthropic":
            content = []
            for index in sorted(self._blocks):
                block = self._blocks[index]
                if block.get("type") == "tool_use":
                    try:
                        block = {**block, "input": orjson.loads(self._partial.get(index) or "{}")}
                    except orjson.JSONDecodeError:
                        block = {**block, "input": {}}
                content.append(block)
            return {**self.answer, "content": content}
        message = self.answer["choices"][0]["message"]
        calls = [self._calls[index] for index in sorted(self._calls)]
        if calls:
            message["tool_calls"] = calls
        return self.answer

    def _relay(self, data: bytes) -> None:
        if not self.client.committed:
            self.client.begin(Head(200, STREAM_HEADERS))
        self.relayed = True
        self.client.send(data)

    def _event(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if "error" in event and (self.fmt == "openai" or event.get("type") == "error"):
            self.error = True
            prefix = b"event: error\n" if self.fmt == "anthropic" else b""
            return self._relay(prefix + b"data: " + payload + b"\n\n")
        if self.fmt == "anthropic":
            self._anthropic(event)
        else:
            self._openai(event)

    def _openai(self, chunk: dict[str, Any]) -> None:
        shared = self.shared
        if not self.answer:
            message = {"role": "assistant", "content": None}
            self.answer = {"id": chunk.get("id"), "object": "chat.completion",
                           "created": chunk.get("created"), "model": chunk.get("model"),
                           "choices": [{"index": 0, "message": message, "finish_reason": None}]}
            if shared.response_id is None:
                shared.response_id = chunk.get("id")
        if isinstance(chunk.get("usage"), dict):
            self.answer["usage"] = chunk["usage"]
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return
        kept = self.answer["choices"][0]
        if choice.get("finish_reason"):
            kept["finish_reason"] = choice["finish_reason"]
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        shown: dict[str, Any] = {}
        for field, value in delta.items():
            if field == "tool_calls" and isinstance(value, list):
                theirs = [call for call in map(self._openai_call, value) if call is not None]
                if theirs:
                    shown["tool_calls"] = theirs
            elif field in ("content", "reasoning_content", "refusal") and isinstance(value, str):
                kept["message"][field] = (kept["message"].get(field) or "") + value
                if value:
                    shown[field] = value
            elif field == "role" and not shared.started:
                shown[field] = value
        if shown:
            shared.started = True
            out = {**chunk, "id": shared.response_id,
                   "choices": [{"index": 0, "delta": shown, "finish_reason": None}]}
            out.pop("usage", None)
            self._relay(b"data: " + orjson.dumps(out) + b"\n\n")

    def _openai_call(self, delta: Any) -> dict[str, Any] | None:
        """Take one tool call delta; what the client sees of it (None: one of ours)."""
        if not isinstance(delta, dict) or not isinstance(delta.get("index"), int):
            return None
        index = delta["index"]
        function = delta.get("function") if isinstance(delta.get("function"), dict) else {}
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = {"id": delta.get("id"), "type": "function",
                                         "function": {"name": function.get("name") or "", "arguments": ""}}
            if not self.owns(call["function"]["name"]):
                self._client_index[index] = len(self._client_index)
        call["function"]["arguments"] += function.get("arguments") or ""
        if index not in self._client_index:
            return None
        return {**delta, "index": self._client_index[index]}

    def _anthropic(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        shared = self.shared
        if kind == "message_start" and isinstance(event.get("message"), dict):
            self.answer = {**event["message"], "content": []}
            if not shared.started:
                shared.started = True
                shared.response_id = self.answer.get("id")
                self._relay(b"event: message_start\ndata: " + orjson.dumps(event) + b"\n\n")
        elif kind == "content_block_start" and isinstance(event.get("index"), int):
            index, block = event["index"], event.get("content_block")
            block = dict(block) if isinstance(block, dict) else {}
            self._blocks[index] = block
            if block.get("type") == "tool_use" and self.owns(str(block.get("name", ""))):
                return
            self._shown[index] = shared.blocks
            shared.blocks += 1
            self._relay_block(event)
        elif kind == "content_block_delta" and isinstance(event.get("index"), int):
            self._anthropic_delta(event["index"], event.get("delta"))
            self._relay_block(event)
        elif kind == "content_block_stop":
            self._relay_block(event)
        elif kind == "message_delta" and self.answer:
            delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
            self.answer.update({k: delta[k] for k in ("stop_reason", "stop_sequence") if k in delta})
            if isinstance(event.get("usage"), dict):
                held = self.answer.get("usage")
                self.answer["usage"] = {**(held if isinstance(held, dict) else {}), **event["usage"]}

    def _anthropic_delta(self, index: int, delta: Any) -> None:
        block = self._blocks.get(index)
        if block is None or not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "input_json_delta":
            self._partial[index] = self._partial.get(index, "") + str(delta.get("partial_json") or "")
        for field, delta_kind in (("text", "text_delta"), ("thinking", "thinking_delta"),
                                  ("signature", "signature_delta")):
            if kind == delta_kind:
                block[field] = str(block.get(field) or "") + str(delta.get(field) or "")

    def _relay_block(self, event: dict[str, Any]) -> None:
        shown = self._shown.get(event.get("index"))  # type: ignore[arg-type]
        if shown is not None:
            name = str(event["type"]).encode()
            self._relay(b"event: " + name + b"\ndata: " + orjson.dumps({**event, "index": shown}) + b"\n\n")
