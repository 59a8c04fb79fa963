"""OpenAI chat completions on the wire: the ``chat.completion`` object, its
``chat.completion.chunk`` SSE stream, and the error body."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from mock_provider.plan import CREATED, Plan

# status -> (OpenAI error.type, OpenAI error.code)
_OPENAI_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("service_unavailable_error", "service_unavailable"),
    529: ("server_error", "overloaded"),
}


def _openai_usage(plan: Plan) -> dict[str, Any]:
    if plan.bad_usage:
        return {"prompt_tokens": -7, "completion_tokens": "many", "total_tokens": 1e308,
                "prompt_tokens_details": "none", "completion_tokens_details": {"reasoning_tokens": [1]}}
    ct = plan.completion_tokens
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": ct,
        "total_tokens": plan.prompt_tokens + ct,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _openai_finish(plan: Plan) -> str:
    if plan.calls:
        return "tool_calls"
    return "length" if plan.truncated else "stop"


def openai_body(plan: Plan, model: str, n: int) -> bytes:
    """A non-stream ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if plan.calls:
        message["content"] = plan.text or None  # a scripted answer may say something first
        message["tool_calls"] = [
            {
                "id": f"call_mock{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for i, (name, args, _) in enumerate(plan.calls)
        ]
    else:
        message["content"] = plan.text
    return orjson.dumps(
        {
            "id": f"chatcmpl-mock{n}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _openai_finish(plan),
                }
            ],
            "usage": _openai_usage(plan),
            "system_fingerprint": "fp_mock",
        }
    )


def openai_events(plan: Plan, model: str, n: int, include_usage: bool) -> list[bytes]:
    """The ``chat.completion.chunk`` SSE events of a streamed reply, ``[DONE]`` included."""
    head = orjson.dumps(
        {"id": f"chatcmpl-mock{n}", "object": "chat.completion.chunk", "created": CREATED,
         "model": model, "system_fingerprint": "fp_mock"}
    )[:-1] + b',"choices":[{"index":0,"delta":'
    tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        fin = b"null" if finish is None else b'"' + finish.encode() + b'"'
        return (b"data: " + head + orjson.dumps(delta)
                + b',"logprobs":null,"finish_reason":' + fin + b"}]" + tail)

    if plan.calls:
        events = [chunk({"role": "assistant", "content": None, "refusal": None})]
        events.extend(chunk({"content": w}) for w in plan.words)  # a scripted answer may say something first
        for i, (name, _, frags) in enumerate(plan.calls):
            events.append(chunk({"tool_calls": [{
                "index": i, "id": f"call_mock{n}_{i}", "type": "function",
                "function": {"name": name, "arguments": ""}}]}))
            events.extend(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": f}}]})
                for f in frags
            )
    else:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events.extend(chunk({"content": w}) for w in plan.words)
    events.append(chunk({}, _openai_finish(plan)))
    if include_usage:
        usage = orjson.dumps(
            {"id": f"chatcmpl-mock{n}", "object": "chat.completion.chunk", "created": CREATED,
             "model": model, "system_fingerprint": "fp_mock", "choices": [],
             "usage": _openai_usage(plan)}
        )
        events.append(b"data: " + usage + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


@functools.lru_cache(maxsize=64)
def openai_error(status: int, message: str | None = None) -> bytes:
    """OpenAI error body ``{"error": {"message", "type", "param", "code"}}``."""
    etype, code = _OPENAI_ERRORS.get(
        status, ("invalid_request_error", "error") if status < 500 else ("server_error", "error")
    )
    param = None
    if message is None and status == 400:  # the fault clients branch on most: a prompt too long
        code, param = "context_length_exceeded", "messages"
    msg = message or f"mock fault: HTTP {status}"
    return orjson.dumps({"error": {"message": msg, "type": etype, "param": param, "code": code}})
