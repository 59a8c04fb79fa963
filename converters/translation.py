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
from converters.upstream_errors import UpstreamError
from converters.usage import Usage

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Translation:
    client: str  # the format the client speaks
    provider: str  # the format the provider speaks
    endpoint: str  # chat endpoint under the provider's url
    request: Callable[[Document], Document] | None  # None: sent as the client wrote it
    response: Callable[[Document, Context], Document] | None  # None: relayed as is
    stream: tuple[ConverterSpec, ...]  # every stream of the pair goes through these, in order
    usage: Callable[[bytes], Usage]  # read from the provider's buffered answer
    error: Callable[[bytes, Callable[[str], str]], UpstreamError]  # the provider's error answer, scrubbed
    client_headers: tuple[str, ...] = ()  # headers of the client's request passed on to the provider
