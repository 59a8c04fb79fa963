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
_LINES_KNOWN = 256  # client header lines remembered, made (see `_known_line`)
_LINE_REMEMBERED = 256  # characters of the longest value remembered: some 100 KiB in all


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
    request_id: str | None = None,
) -> Request:
    """A request to `provider`: the client's `headers` merged with the provider's (see the module
    docstring), then `request_id` as x-request-id (a plain one: ops/request_ids.py or a client's
    checked one), its timeouts (`timeout` instead of the provider's, when given; an idle timeout
    no shorter than the whole is left to the whole)."""
    own = _own(provider.headers, provider.timeout, provider.connect_timeout, provider.idle_timeout)
    lines: list[bytes] = []
    typed = client_version = False
    broken = None  # the first line that would not stay one (refused once every line is encoded)
    for name, value in headers:
        lower, line, breaks = (_known_line if len(value) <= _LINE_REMEMBERED else _line)(name, value)
        if lower in own.names:
            if lower != "anthropic-version":
                continue
            client_version = True
        elif lower == "content-type":
            typed = True
        if breaks and broken is None:
            broken = line
        lines.append(line)
    if broken is not None:
        raise _holds_break(broken.partition(b":")[0].decode("latin-1"))
    if request_id is not None and "x-request-id" not in own.names:
        lines.append(b"x-request-id: " + request_id.encode())
    lines.extend(own.lines_with_client_version if client_version else own.lines)
    if body is not None and not (typed or own.typed):
        lines.append(NO_CONTENT_TYPE)
    if isinstance(body, BodyPipe) and body.length is None:
        lines.append(b"Transfer-Encoding: chunked")
    if timeout is None:
        return Request(url, method, lines, body, own.timeout_ms, own.connect_timeout_ms, own.idle_timeout)
    total_ms, connect_ms, idle = _limits(timeout, provider.connect_timeout, provider.idle_timeout)
    return Request(url, method, lines, body, total_ms, connect_ms, idle)


def _line(name: str, value: str) -> tuple[str, bytes, bool]:
    """A client header's name in lower case, its line, and whether that would not stay one line;
    UnicodeEncodeError when it cannot be sent."""
    line = f"{name}: {value}".encode("latin-1")
    return name.lower(), line, _breaks_line(line)


# A line is made once for the lines a client sends on every request (Content-Type, its SDK's
# own), for the last few hundred short ones (a line that cannot be encoded is not kept). Only in
# this process's memory, which holds every provider key in the clear anyway.
_known_line = functools.lru_cache(maxsize=_LINES_KNOWN)(_line)


@dataclass(slots=True)
class _Own:
    """What each request to one provider sends alike: its own headers and its limits (made once
    per provider)."""

    names: frozenset[str]  # in lower case
    lines: tuple[bytes, ...]  # then FIXED_LINES
    lines_with_client_version: tuple[bytes, ...]  # the same, but for the provider's anthropic-version
    typed: bool  # one is a Content-Type
    timeout_ms: int
    connect_timeout_ms: int
    idle_timeout: float | None


@functools.lru_cache(maxsize=64)
def _own(headers: tuple[tuple[str, str], ...], total: float, connect: float, idle: float | None) -> _Own:
    """What every request to a provider sends alike, by its headers and limits: one cache, not
    one for the headers and one for the limits (one that cannot be sent raises each time,
    refusing each request)."""
    lowered = [(name.lower(), header_line(name, value)) for name, value in headers]
    return _Own(
        frozenset(lower for lower, _ in lowered),
        (*(line for _, line in lowered), *FIXED_LINES),
        (*(line for lower, line in lowered if lower != "anthropic-version"), *FIXED_LINES),
        any(lower == "content-type" for lower, _ in lowered),
        *_limits(total, connect, idle),
    )


@functools.lru_cache(maxsize=64)
def _limits(total: float, connect: float, idle: float | None) -> tuple[int, int, float | None]:
    """The whole transfer's and the connection's limits in ms, and the idle timeout when it is
    shorter than the whole (made once per provider)."""
    return _ms(total), _ms(min(total, connect)), None if idle is not None and idle >= total else idle


def header_line(name: str, value: str) -> bytes:
    """`name: value` as libcurl sends it; ValueError when it would not stay one line."""
    line = f"{name}: {value}"
    if "\n" in line or "\r" in line:
        raise _holds_break(name)
    return line.encode("latin-1")


def _breaks_line(text: bytes) -> bool:
    # The bytes' values, not b"\n": `bytes in bytes` first tries the needle as an int, and the
    # TypeError it raises and clears costs ten times the search (some 1.5 K instructions).
    return 10 in text or 13 in text  # LF, CR


def _holds_break(name: str) -> ValueError:
    """What refuses a request whose header `name` would not stay one line."""
    return ValueError(f"header {name!r} holds a line break")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
