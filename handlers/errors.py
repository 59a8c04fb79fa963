"""Error bodies in the client's own wire format, so SDKs raise their proper exceptions."""

from __future__ import annotations

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
