"""Reading a provider's answer to relay it as it is (forward and passthrough).

Streams are relayed whole events at a time; an error body has the provider's key taken
out (a 2xx body is the client's own data, relayed byte for byte); the last bytes are
kept, to read usage from.
"""

from __future__ import annotations

from collections.abc import Callable

from converters.sse import SSEFramer
from dsl.table import Provider
from upstream.attempt import Head
from upstream.exchange import Exchange
from upstream.headers import UPSTREAM_PRIVATE, relayable
from upstream.scrub import KeyScrubber

TAIL = 8192  # bytes of the answer kept to read its usage from


def _relay_all(status: int) -> bool:
    return False


class PassOn:
    """A Reading (upstream/attempt.py) that relays every answer except those `keep` picks."""

    __slots__ = ("_provider", "_keep", "_framer", "_scrubber", "tail")

    def __init__(self, provider: Provider, keep: Callable[[int], bool] = _relay_all) -> None:
        """`keep(status)` says which answers are kept for the caller instead of relayed (an
        error another target may fix)."""
        self._provider = provider
        self._keep = keep
        self._framer: SSEFramer | None = None
        self._scrubber: KeyScrubber | None = None
        self.tail = b""

    def relay(self, exchange: Exchange) -> bool:
        if self._keep(exchange.status):
            return False
        self.tail = b""
        self._framer = SSEFramer() if exchange.streaming else None
        # Providers quote a key only when refusing it; a 2xx body is the client's data.
        key = self._provider.key
        self._scrubber = KeyScrubber(key) if key and exchange.status >= 400 else None
        return True

    def head(self, exchange: Exchange) -> Head:
        """The upstream's status and headers, its key scrubbed from them (should one quote it),
        its request id renamed x-upstream-request-id so that ours stays the client's."""
        scrub = self._provider.scrub
        headers = [
            ("x-upstream-request-id" if name.lower() == "x-request-id" else name, scrub(value))
            for name, value in relayable(exchange.headers, UPSTREAM_PRIVATE)
        ]
        return Head(exchange.status, headers, upstream=True)

    def feed(self, data: bytes) -> bytes:
        return self._frame(self._scrubber.feed(data) if self._scrubber is not None else data)

    def settled_feed(self) -> Callable[[bytes], bytes]:
        return self.feed

    def close(self) -> bytes:
        out = self._frame(self._scrubber.close()) if self._scrubber is not None else b""
        return out + self._framer.close() if self._framer is not None else out

    def cut(self) -> bytes:
        """A partial event or a scrubber's held bytes are not worth an answer cut short."""
        return b""

    def _frame(self, data: bytes) -> bytes:
        out = self._framer.feed(data) if self._framer is not None else data
        self.tail = (self.tail + data)[-TAIL:]
        return out
