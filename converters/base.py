"""The converter interface: incremental transforms over upstream bytes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from converters.sse import SSEFramer


@dataclass(slots=True)
class Context:
    """What a converter may need to know about the request it serves. Not frozen, though never
    changed: one is made per try, and a frozen dataclass's every field costs an
    object.__setattr__ call (about 1.5 K instructions)."""

    client_request: dict[str, Any]  # the client's request body as parsed, before any conversion
    model: str  # the model name the client asked for, echoed back in converted answers


class StreamConverter(Protocol):
    """Fed upstream bytes as they arrive; returns what the client should get now."""

    def feed(self, data: bytes) -> bytes:
        """Transform one chunk; may hold back an incomplete tail until the next call."""
        ...

    def close(self) -> bytes:
        """End of a clean upstream stream: return whatever is still held back."""
        ...


@dataclass(frozen=True, slots=True)
class ConverterSpec:
    """A named converter: what it reads, what it writes, how to make one per request.

    Its name is what a route's `converters:` list says.
    """

    name: str
    accepts: str
    produces: str
    factory: Callable[[Context], StreamConverter]
    summary: str


class Chain:
    """Converters applied in order; the output of one is the input of the next."""

    __slots__ = ("converters",)

    def __init__(self, converters: Sequence[StreamConverter]) -> None:
        self.converters = tuple(converters)

    def feed(self, data: bytes) -> bytes:
        for converter in self.converters:
            if not data:
                return b""
            data = converter.feed(data)
        return data

    def settled_feed(self) -> Callable[[bytes], bytes]:
        """`feed` as a stream's every later chunk takes it, without the loop over the converters
        (some 400 instructions a chunk): a chain of one converter is that converter's own `feed`
        (for an empty chunk it gives nothing too, as the chain does); of two, a function that
        calls theirs in turn (a framer's own, SSEFramer.feeding, when it comes first)."""
        converters = self.converters
        if len(converters) == 1:
            return converters[0].feed
        if len(converters) == 2:
            if isinstance(converters[0], SSEFramer):
                return converters[0].feeding(converters[1].feed)
            first, second = converters[0].feed, converters[1].feed

            def feed_two(data: bytes) -> bytes:
                if not data:
                    return b""
                data = first(data)
                return second(data) if data else b""

            return feed_two
        return self.feed

    def close(self) -> bytes:
        out = b""
        for converter in self.converters:
            out = converter.feed(out) if out else b""
            out += converter.close()
        return out

    def cut(self) -> bytes:
        """The upstream failed mid-stream: what converters holding text back (those with a
        `cut`, as answer redaction) let out before the error event. Nothing is closed: an
        answer cut short gets no clean end, and a partial event held back is dropped."""
        out = b""
        for converter in self.converters:
            out = converter.feed(out) if out else b""
            cut = getattr(converter, "cut", None)
            if cut is not None:
                out += cut()
        return out
