"""A provider's error answer, read into the fields a client's error will carry.

Both wire formats nest the error under "error" (OpenAI: message, type, code, param;
Anthropic: type, message), so one reader serves the providers of either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

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
