"""The translation object: everything a chat exchange needs for one format pair.

A pair is (the format the client speaks, the format the provider speaks). Each pair
is one frozen Translation in its own module under converters/pairs/; the registry
maps a pair to it. Same-format pairs convert nothing and only frame and meter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from converters.base import Context, ConverterSpec
from converters.upstream_errors import UpstreamError, upstream_error
from converters.usage import Usage

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Translation:
    """One format pair: how a chat request of its client format is served by its provider format."""

    client: str  # the format the client speaks
    provider: str  # the format the provider speaks
    endpoint: str  # chat endpoint under the provider's url
    stream: tuple[ConverterSpec, ...]  # every stream of the pair goes through these, in order
    usage: Callable[[Any], Usage]  # read from the provider's buffered answer, parsed
    # None: sent as the client wrote it; else a document of its own (the handler sets its model in it)
    request: Callable[[Document], Document] | None = None
    # None: relayed as is; else the client's answer body (encoded: ValueError when it cannot be),
    # given the answer's usage as `usage` read it.
    response: Callable[[Document, Context, Usage], bytes] | None = None
    # The provider's error answer, read with the provider's key scrubbed out.
    error: Callable[[bytes, Callable[[str], str]], UpstreamError] = upstream_error
    client_headers: tuple[str, ...] = ()  # headers of the client's request passed on to the provider
    # The provider sends a stream's usage only when asked: a streamed request asks for it
    # (converters.usage.with_stream_usage) unless the provider's `stream_usage` is off.
    asks_stream_usage: bool = False
