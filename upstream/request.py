"""What one upstream request sends, in the form a libcurl handle takes it: built once per request.

The provider's own headers (its key, its version) replace any the client sent under the
same name, except a client's `anthropic-version`, which wins over the configured default.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from dsl.table import Provider
from upstream.body_pipe import BodyPipe

# Sent with every request: no "Expect: 100-continue" round trip before a body (libcurl
# would add one to large bodies), and no Pragma of libcurl's.
FIXED_LINES = (b"Expect:", b"Pragma:")
# A relayed body with no Content-Type of the client's is not given libcurl's form type.
NO_CONTENT_TYPE = b"Content-Type:"


# Not frozen (never changed all the same): made per request, and a frozen dataclass's __init__
# sets each field through object.__setattr__, some 4 K instructions more per instance.
@dataclass(slots=True)
class Request:
    url: str
    method: str
    header_lines: list[bytes]
    body: bytes | BodyPipe | None
    timeout_ms: int
    connect_timeout_ms: int
    idle_timeout: float | None = None  # seconds of upstream silence that fail the transfer


def provider_request(
    provider: Provider,
    url: str,
    method: str,
    body: bytes | BodyPipe | None,
    headers: Iterable[tuple[str, str]],
    timeout: float | None = None,
) -> Request:
    """A request to `provider`: the client's `headers` merged with the provider's (see the module
    docstring), its timeouts (`timeout` instead of the provider's, when given; an idle timeout
    no shorter than the whole is left to the whole)."""
    own = provider.headers
    replaced = _names(own)
    lines: list[bytes] = []
    typed = client_version = False
    for name, value in headers:
        lower = name.lower()
        if lower in replaced:
            if lower != "anthropic-version":
                continue
            client_version = True
        typed = typed or lower == "content-type"
        lines.append(header_line(name, value))
    for lower, line in _lines(own):
        if not (client_version and lower == "anthropic-version"):
            typed = typed or lower == "content-type"
            lines.append(line)
    lines.extend(FIXED_LINES)
    if body is not None and not typed:
        lines.append(NO_CONTENT_TYPE)
    if isinstance(body, BodyPipe) and body.length is None:
        lines.append(b"Transfer-Encoding: chunked")
    total = provider.timeout if timeout is None else timeout
    connect = min(total, provider.connect_timeout)
    idle = provider.idle_timeout
    if idle is not None and idle >= total:
        idle = None  # the whole limit comes first
    return Request(url, method, lines, body, _ms(total), _ms(connect), idle)


@functools.lru_cache(maxsize=64)
def _names(headers: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """A provider's own header names, in lower case (made once per provider, not per request)."""
    return frozenset(name.lower() for name, _ in headers)


@functools.lru_cache(maxsize=64)
def _lines(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, bytes], ...]:
    """A provider's own headers as sent, each with its name in lower case (made once per
    provider; one that cannot be sent raises each time, refusing each request)."""
    return tuple((name.lower(), header_line(name, value)) for name, value in headers)


def header_line(name: str, value: str) -> bytes:
    """`name: value` as libcurl sends it; ValueError when it would not stay one line."""
    line = f"{name}: {value}"
    if "\n" in line or "\r" in line:
        raise ValueError(f"header {name!r} holds a line break")
    return line.encode("latin-1")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
