"""Error bodies in the client's own wire format, so SDKs raise their proper exceptions."""

from __future__ import annotations

import orjson

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


def error_body(ingress: str, status: int, message: str, code: str | None = None) -> bytes:
    """JSON error for a client speaking `ingress` ('openai' or 'anthropic')."""
    if ingress == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    kind = _OPENAI_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def stream_error_event(ingress: str, status: int, message: str, code: str | None = None) -> bytes:
    """The SSE event that ends a stream which failed after it started."""
    body = error_body(ingress, status, message, code)
    if ingress == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"


def upstream_message(body: bytes) -> str | None:
    """The human message inside a provider's error body (OpenAI or Anthropic shape), if any."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:1000]
    if isinstance(error, str):
        return error[:1000]
    return None
