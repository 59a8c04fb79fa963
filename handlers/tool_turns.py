"""A tool loop's turns in the client's wire format (OpenAI chat completions or Anthropic
messages): the calls an answer makes, the request that carries their results, usage summed
over rounds, and the stream events that end a streamed loop.

The loop works on the client's format so that the route's converters serve every round,
whatever format the provider speaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from toolbox.results import ToolResult


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model made: its id, the tool's name and its arguments (OpenAI's JSON
    text, or Anthropic's object)."""

    id: str
    name: str
    arguments: Any


def calls_of(answer: dict[str, Any], fmt: str) -> list[ToolCall]:
    """The tool calls of a whole answer, in order."""
    found: list[ToolCall] = []
    if fmt == "anthropic":
        for block in _list(answer.get("content")):
            if isinstance(block, dict) and block.get("type") == "tool_use":
                name = str(block.get("name", ""))
                found.append(ToolCall(str(block.get("id", "")), name, block.get("input")))
        return found
    for call in _list(_message(answer).get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            found.append(ToolCall(str(call.get("id", "")), str(function.get("name", "")),
                                  function.get("arguments")))
    return found


def keeping_calls(answer: dict[str, Any], fmt: str, keep: set[str]) -> dict[str, Any]:
    """The answer with only the tool calls whose ids are in `keep` (the client's own)."""
    if fmt == "anthropic":
        content = [block for block in _list(answer.get("content"))
                   if not (isinstance(block, dict) and block.get("type") == "tool_use"
                           and block.get("id") not in keep)]
        return {**answer, "content": content}
    message = _message(answer)
    calls = [c for c in _list(message.get("tool_calls")) if isinstance(c, dict) and c.get("id") in keep]
    choice = {**answer["choices"][0], "message": {**message, "tool_calls": calls}}
    return {**answer, "choices": [choice, *answer["choices"][1:]]}


def next_turns(
    answer: dict[str, Any], fmt: str, results: list[tuple[ToolCall, ToolResult]]
) -> list[dict[str, Any]]:
    """What the next round's request adds to the messages: the answer's assistant turn and the
    tools' results (OpenAI `role: tool` messages; Anthropic a user turn of `tool_result` blocks)."""
    if fmt == "anthropic":
        return [{"role": "assistant", "content": answer.get("content") or []},
                {"role": "user", "content": [result.anthropic_block(call.id) for call, result in results]}]
    message = _message(answer)
    assistant = {"role": "assistant", "content": message.get("content"),
                 "tool_calls": message.get("tool_calls")}
    return [assistant, *(result.openai_message(call.id) for call, result in results)]


def tools_disabled(document: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The request with the tools kept (the turns so far refer to them) but none to be called."""
    return {**document, "tool_choice": {"type": "none"} if fmt == "anthropic" else "none"}


def add_usage(total: dict[str, Any], usage: Any) -> None:
    """Add a round's `usage` object to `total`, field by field (nested details too)."""
    if not isinstance(usage, dict):
        return
    for key, value in usage.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            held = total.get(key)
            total[key] = (held if isinstance(held, int | float) else 0) + value
        elif isinstance(value, dict):
            nested = total.get(key)
            if not isinstance(nested, dict):
                nested = total[key] = {}
            add_usage(nested, value)


def as_stream(answer: dict[str, Any], fmt: str, with_usage: bool) -> bytes:
    """A whole answer as the stream of events the client's API sends for it, terminator included
    (an upstream that answered JSON to a streamed request). `with_usage`: with OpenAI's usage chunk."""
    return _anthropic_events(answer) if fmt == "anthropic" else _openai_chunks(answer, with_usage)


def stream_end(answer: dict[str, Any], fmt: str, with_usage: bool, response_id: Any) -> bytes:
    """The events that end a stream whose content went out already: the final answer's stop
    reason and usage (OpenAI: with `with_usage` only), then the terminator."""
    if fmt == "anthropic":
        return _events(_anthropic_end(answer))
    choices = _list(answer.get("choices"))
    finish = choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else "stop"
    base = {"id": response_id, "object": "chat.completion.chunk", "created": answer.get("created"),
            "model": answer.get("model")}
    chunks = [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
    if with_usage:
        chunks.append({**base, "choices": [], "usage": answer.get("usage")})
    return b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


def _openai_chunks(answer: dict[str, Any], with_usage: bool) -> bytes:
    base = {"id": answer.get("id"), "object": "chat.completion.chunk", "created": answer.get("created"),
            "model": answer.get("model")}
    choice = answer["choices"][0] if _list(answer.get("choices")) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    delta: dict[str, Any] = {"role": "assistant"}
    for field in ("content", "reasoning_content", "refusal"):
        if message.get(field):
            delta[field] = message[field]
    calls = [{"index": i, **call} for i, call in enumerate(_list(message.get("tool_calls")))]
    if calls:
        delta["tool_calls"] = calls
    chunks = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}]}]
    if with_usage:
        chunks.append({**base, "choices": [], "usage": answer.get("usage")})
    return b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


_DELTAS = MappingProxyType({"text": ("text_delta", "text"), "thinking": ("thinking_delta", "thinking")})


def _anthropic_events(answer: dict[str, Any]) -> bytes:
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 0}}
    events = [(b"message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(_list(answer.get("content"))):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in _DELTAS:
            delta_type, field = _DELTAS[kind]
            opened = {**block, field: ""}
            opened.pop("signature", None)
            deltas = [{"type": delta_type, field: block.get(field, "")}]
            if kind == "thinking" and block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            opened = {**block, "input": {}}
            arguments = orjson.dumps(block.get("input") or {}).decode()
            deltas = [{"type": "input_json_delta", "partial_json": arguments}]
        else:
            opened, deltas = block, []
        events.append((b"content_block_start", {"type": "content_block_start", "index": index,
                                                "content_block": opened}))
        events += [(b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                   for d in deltas]
        events.append((b"content_block_stop", {"type": "content_block_stop", "index": index}))
    return _events(events + _anthropic_end(answer))


def _anthropic_end(answer: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
    delta = {"stop_reason": answer.get("stop_reason"), "stop_sequence": answer.get("stop_sequence")}
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    return [(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            (b"message_stop", {"type": "message_stop"})]


def _events(events: list[tuple[bytes, dict[str, Any]]]) -> bytes:
    return b"".join(b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events)


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    choices = _list(answer.get("choices"))
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    return message if isinstance(message, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
