"""One upstream exchange, observed as libcurl delivers it: status, headers, then body chunks.

The attempt (upstream/attempt.py) decides what to do once headers are complete (relay to
the client, keep, or treat as a failure to retry); this module only tracks state,
holds the transfer while the client is behind, and cancels it when the client goes away.
Headers and chunks are handed over synchronously from libcurl's callbacks, in arrival
order, with no copy and no loop turn in between: the head just before the body's first
chunk (or, for an answer with no body, as the transfer ends).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import pycurl

from dsl.table import Provider
from upstream.body_pipe import BodyPipe
from upstream.client import UpstreamClient
from upstream.ended import Ended, ended_well
from upstream.handle import Handle
from upstream.request import Request, provider_request
from upstream.response_head import NO_HEADERS, Headers, NoHeaders, final_head


class Exchange:
    """State of one upstream request; `on_headers` and `on_chunk` fire as libcurl reads them
    (`on_headers` once, before the first chunk; chunks go to what `relay_straight` names instead,
    once it is called).

    `hold()` stops libcurl reading the upstream answer (its write callback returns the
    pause code, so the provider's bytes wait in its socket, not here) until `release()`:
    the client's unsent bytes, not the provider's speed, set how much is in memory.
    """

    __slots__ = ("status", "headers", "streaming", "done", "request", "handle", "fault", "_client",
                 "held", "_on_headers", "_on_chunk", "_head_read", "_pipe", "_receive_paused", "_ended")

    def __init__(
        self,
        client: UpstreamClient,
        on_headers: Callable[[Exchange], None],
        on_chunk: Callable[[bytes], None],
    ) -> None:
        self.status = 0
        self.headers: Headers | NoHeaders = NO_HEADERS  # until the answer's head is in
        self.streaming = False
        self.done = False
        self.request: Request | None = None
        self.handle: Handle | None = None  # while libcurl runs the transfer (set by the client)
        self.fault: str | None = None  # an internal error that failed the transfer
        self._client = client
        self._on_headers = on_headers
        self._on_chunk = on_chunk
        self._head_read = False  # the final head is in: later lines are trailers
        self._pipe: BodyPipe | None = None
        # Held by `hold()` until `release()`. A plain attribute, not a property: a steady
        # stream's every chunk reads it (upstream/attempt.py).
        self.held = False
        self._receive_paused = False
        self._ended: asyncio.Future[Ended] | None = None

    def run(
        self,
        provider: Provider,
        url: str,
        method: str,
        body: bytes | BodyPipe | None,
        headers: Iterable[tuple[str, str]],
        request_id: str | None = None,
    ) -> asyncio.Future[Ended]:
        """Send the request to `provider`; resolves when the transfer ends (see `send`).

        `body` may be a BodyPipe, relaying a body that is still arriving from the client.
        """
        try:
            request = provider_request(provider, url, method, body, headers, None, request_id)
        except (ValueError, UnicodeEncodeError) as exc:
            self.done = True
            refused = self._client.loop.create_future()
            refused.set_result(Ended(0, pycurl.E_BAD_FUNCTION_ARGUMENT, f"request refused: {exc}"))
            return refused
        return self.send(request)

    def send(self, request: Request) -> asyncio.Future[Ended]:
        """Send `request`; the future resolves when the transfer ends. Not a coroutine: the
        caller awaits the future itself (a coroutine's frame less per request, and at each of
        its wake-ups), and calls `cancel` when its task is cancelled (the transfer stops too)."""
        self.request = request
        if isinstance(request.body, BodyPipe):
            self._pipe = request.body
        ended = self._ended = self._client.loop.create_future()
        self._client.start(self)
        return ended

    def cancel(self) -> None:
        """Stop the transfer: the client is gone, or the answer cannot be relayed.

        No more chunks are delivered from now on; the transfer itself is stopped on the
        loop's next turn, as this may be called from inside a chunk's delivery.
        """
        if self.request is not None and not self.done:
            self.done = True
            self._client.loop.call_soon(self._client.stop, self)

    # -- what the client and libcurl's callbacks call ---------------------------------------

    def head(self, lines: list[bytes]) -> None:
        if self._head_read:
            return  # trailers: never relayed
        read = final_head(lines)
        if read is None:
            return  # interim heads only: the final one follows
        self._head_read = True
        self.status, headers = read
        self.headers = headers
        # startswith, for less: a method's arguments are parsed, a slice's are not
        self.streaming = (headers.get("Content-Type") or "")[:17] == "text/event-stream"
        self._on_headers(self)

    def receive(self, data: bytes) -> int | None:
        if self.held:
            return self.pause_receiving()
        if not self.done:
            self._on_chunk(data)
        return None

    def pause_receiving(self) -> int:
        """What libcurl's write callback answers to a chunk that comes while held: libcurl keeps
        the chunk, pauses the transfer, and offers the chunk again on `release()`."""
        self._receive_paused = True
        return pycurl.WRITEFUNC_PAUSE

    def relay_straight(self, deliver: Callable[[bytes], int | None]) -> None:
        """From now on, libcurl's write callback hands each chunk of the answer to `deliver`, not
        to `receive` and the `on_chunk` behind it: for a stream that is relayed steadily, a few
        calls fewer per event (upstream/attempt.py `_steady`). `deliver` does what `receive`
        does: `pause_receiving()` while held, nothing once done."""
        handle = self.handle
        if handle is not None:
            handle.deliver = deliver

    def ended(self, error: int, message: str) -> None:
        """The transfer is over (the client has taken its handle back)."""
        self.done = True
        # The callbacks hold the handler that holds this exchange: let go of them, so that the
        # request is freed when it ends rather than by the cycle collector.
        self._on_headers, self._on_chunk = _ignored, _ignored
        if self.fault is not None:  # what libcurl says is only how our callback stopped it
            error, message = pycurl.E_WRITE_ERROR, self.fault
        ended = self._ended
        if ended is not None and not ended.done():
            status = self.status
            ended.set_result(Ended(status, error, message) if error or message else ended_well(status))

    # -- pacing ------------------------------------------------------------------------

    def hold(self) -> None:
        """Receive nothing more from the upstream until `release()`."""
        self.held = True

    def release(self) -> None:
        """Receive again (no-op unless held); the upload direction keeps its own state.

        libcurl may hand over what it kept at once, from inside this call; it then asks
        for its timer at 0 ms (upstream/driver.py) to read on.
        """
        self.held = False
        handle = self.handle
        if not self._receive_paused or self.done or handle is None:
            return
        self._receive_paused = False
        sending_paused = self._pipe is not None and self._pipe.paused
        with contextlib.suppress(pycurl.error):  # failed while paused: its end reports that
            handle.curl.pause(pycurl.PAUSE_SEND if sending_paused else pycurl.PAUSE_CONT)

    @property
    def receiving_paused(self) -> bool:
        """Whether libcurl is not reading the answer now, because the client is behind."""
        return self._receive_paused


def _ignored(_: object) -> None:
    """What an exchange that has ended does with a late header or chunk."""
