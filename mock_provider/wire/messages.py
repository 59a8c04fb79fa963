"""Anthropic messages on the wire: the ``message`` object, its SSE event sequence, and the
error body."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from mock_provider.plan import THINKING_SIGNATURE, Plan

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


def _sse(name: bytes, obj: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


_PING = _sse(b"ping", {"type": "ping"})
_MESSAGE_STOP = _sse(b"message_stop", {"type": "message_stop"})


def _anthropic_stop(plan: Plan) -> str:
    if plan.calls:
        return "tool_use"
    return "max_tokens" if plan.truncated else "end_turn"


def _anthropic_usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
    if plan.bad_usage:
        return {"input_tokens": "lots", "cache_creation_input_tokens": -3,
                "cache_read_input_tokens": 2**60, "output_tokens": 1e308, "output_tokens_details": []}
    return {
        "input_tokens": plan.prompt_tokens - plan.cached_tokens,  # cache reads are counted apart
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": plan.cached_tokens,
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
        if plan.words:  # a scripted answer may say something first
            content.append({"type": "text", "text": plan.text})
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
        if plan.words:  # a scripted answer may say something first
            start({"type": "text", "text": ""})
            for w in plan.words:
                delta({"type": "text_delta", "text": w})
            stop()
            index += 1
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
