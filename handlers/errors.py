"""Error bodies in the client's own wire format, so SDKs raise their proper exceptions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from converters.chat_mapping import ANTHROPIC_ERROR_TYPES

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_MAX_MESSAGE = 1000
_MAX_FIELD = 200  # type, code, param: identifiers, never long
_FIELDS = (("message", _MAX_MESSAGE), ("type", _MAX_FIELD), ("code", _MAX_FIELD), ("param", _MAX_FIELD))


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """What a provider's error body said, kept so that clients can branch on type, code and param."""

    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None


def error_body(
    ingress: str, status: int, message: str, code: str | None = None,
    kind: str | None = None, param: str | None = None,
) -> bytes:
    """JSON error for a client speaking `ingress` ('openai' or 'anthropic').

    `kind` (a provider's own error type) replaces the one derived from the status; an
    Anthropic client gets it only when it is one of Anthropic's types.
    """
    if ingress == "anthropic":
        if kind not in ANTHROPIC_ERROR_TYPES:
            kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if kind is None:
        kind = _OPENAI_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def stream_error_event(ingress: str, status: int, message: str, code: str | None = None) -> bytes:
    """The SSE event that ends a stream which failed after it started."""
    body = error_body(ingress, status, message, code)
    if ingress == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"


def upstream_error(body: bytes, scrub: Callable[[str], str]) -> UpstreamError:
    """The error inside a provider's error body (OpenAI or Anthropic shape); fields it lacks are None.

    `scrub` (the provider's key remover) runs on each field before it is cut to length,
    so that no part of a key survives.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return UpstreamError()
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, str):
        return UpstreamError(_text(error, scrub, _MAX_MESSAGE))
    if not isinstance(error, dict):
        return UpstreamError()
    return UpstreamError(*(_text(error.get(name), scrub, limit) for name, limit in _FIELDS))


def _text(value: object, scrub: Callable[[str], str], limit: int) -> str | None:
    """A string field of an error, scrubbed and cut short (some providers send numeric codes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return scrub(value)[:limit] if isinstance(value, str) and value else None
