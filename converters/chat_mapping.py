"""The field-level vocabulary shared by the OpenAI <-> Anthropic chat converters.

Stop reasons, usage objects, tool ids, tool arguments and error objects are mapped
the same way in buffered answers and in streams; keeping the tables in one place
keeps the two paths from drifting apart.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from converters.usage import Usage

# Anthropic stop_reason -> OpenAI finish_reason. pause_turn (a server tool wants another
# turn) has no OpenAI counterpart; the answer so far is complete, so it reads as "stop".
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Error types an Anthropic client knows; anything else is reported as api_error.
ANTHROPIC_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "overloaded_error", "billing_error",
    "timeout_error",
})

_NOT_ID_CHARACTER = re.compile(r"[^A-Za-z0-9_-]")


def finish_reason(stop_reason: object) -> str:
    """The OpenAI finish_reason for an Anthropic stop_reason (a missing one reads as "stop")."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(finish: object, matched: object, client_request: dict[str, Any],
                has_tool_calls: bool) -> tuple[str, str | None]:
    """The Anthropic (stop_reason, stop_sequence) for an OpenAI finish_reason.

    OpenAI does not say which stop sequence ended the answer; vLLM-style providers put
    it in the choice's `stop_reason`, and when it is one the client asked for it is
    reported as such. Some providers finish tool calls with "stop": tool calls win.
    """
    if finish in ("stop", None) and has_tool_calls:
        return "tool_use", None
    if finish == "stop" and isinstance(matched, str):
        sequences = client_request.get("stop_sequences")
        if isinstance(sequences, list) and matched in sequences:
            return "stop_sequence", matched
    return (STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"), None


def take_openai_usage(usage: Usage, document: dict[str, Any]) -> None:
    """Record an OpenAI usage object, keeping the cache writes some providers report."""
    usage.add_openai(document)
    usage.cache_write = cache_writes(document)


def cache_writes(document: dict[str, Any]) -> int:
    """The cache writes some OpenAI-compatible providers report in a usage object."""
    details = document.get("prompt_tokens_details")
    written = details.get("cache_write_tokens") if isinstance(details, dict) else None
    return int(written or 0)


def openai_usage(usage: Usage) -> dict[str, Any]:
    """An OpenAI usage object: prompt_tokens counts every prompt token, cached ones included."""
    details: dict[str, int] = {"cached_tokens": usage.cached}
    if usage.cache_write:
        details["cache_write_tokens"] = usage.cache_write
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }


def openai_usage_json(usage: Usage) -> bytes:
    """openai_usage, encoded: its counts written into its bytes (integers, as JSON writes them)."""
    if usage.cache_write:
        return orjson.dumps(openai_usage(usage))
    total = usage.input + usage.output
    return _OPENAI_USAGE % (usage.input, usage.output, total, usage.cached, usage.reasoning)


_OPENAI_USAGE = (b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
                 b'"prompt_tokens_details":{"cached_tokens":%d},"completion_tokens_details":{"reasoning_tokens":%d}}')


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """An Anthropic usage object: input_tokens excludes the tokens read from or written to cache."""
    document: dict[str, Any] = {
        "input_tokens": max(usage.input - usage.cached - usage.cache_write, 0),
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cached,
        "output_tokens": usage.output,
    }
    if usage.reasoning:
        document["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
    return document


def anthropic_tool_id(raw: str) -> str:
    """A tool call id Anthropic accepts (it allows only [A-Za-z0-9_-]); stable for equal input."""
    return _NOT_ID_CHARACTER.sub("_", raw) if raw else "toolu_missing"


def parse_arguments(raw: object) -> dict[str, Any]:
    """OpenAI's JSON-string arguments as the object Anthropic wants; malformed ones become {}."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def openai_reasoning(message: dict[str, Any]) -> str:
    """The reasoning text of an OpenAI-compatible message or delta (`reasoning_content`, or `reasoning`)."""
    text = message.get("reasoning_content")
    if not isinstance(text, str):
        text = message.get("reasoning")
    return text if isinstance(text, str) else ""


def openai_error(error: object) -> dict[str, Any]:
    """An OpenAI error body for an Anthropic error object."""
    if not isinstance(error, dict):
        error = {}
    message = error.get("message")
    kind = error.get("type")
    return {"error": {
        "message": message if isinstance(message, str) else "upstream stream failed",
        "type": kind if isinstance(kind, str) else "api_error",
        "param": None,
        "code": None,
    }}


def anthropic_error(error: object) -> dict[str, Any]:
    """An Anthropic error body for an OpenAI error object (or a bare error string)."""
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {}
    message = error.get("message")
    kind = error.get("type")
    return {"type": "error", "error": {
        "type": kind if kind in ANTHROPIC_ERROR_TYPES else "api_error",
        "message": message if isinstance(message, str) else "upstream stream failed",
    }}
