"""One upstream exchange, observed as libcurl delivers it: status, headers, then body chunks.

The attempt (upstream/attempt.py) decides what to do once headers are complete (relay to
the client, keep, or treat as a failure to retry); this module only tracks state,
holds the transfer while the client is behind, and cancels it when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import pycurl
from tornado.curl_httpclient import CurlError
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop

from dsl.table import Provider
from upstream.body_pipe import BodyPipe
from upstream.client import UpstreamClient


class Exchange:
    """State of one upstream request; callbacks fire on the IOLoop in arrival order.

    `hold()` stops libcurl reading the upstream answer (its write callback returns the
    pause code, so the provider's bytes wait in its socket, not here) until `release()`:
    the client's unsent bytes, not the provider's speed, set how much is in memory.
    """

    __slots__ = ("status", "headers", "streaming", "request", "_client", "_on_headers", "_on_chunk", "done",
                 "_pipe", "_curl", "_held", "_receive_paused")

    def __init__(
        self,
        client: UpstreamClient,
        on_headers: Callable[[Exchange], None],
        on_chunk: Callable[[bytes], None],
    ) -> None:
        self.status = 0
        self.headers = HTTPHeaders()
        self.streaming = False
        self.done = False
        self.request: HTTPRequest | None = None
        self._client = client
        self._on_headers = on_headers
        self._on_chunk = on_chunk
        self._pipe: BodyPipe | None = None
        self._curl: pycurl.Curl | None = None
        self._held = False
        self._receive_paused = False  # by us; Tornado's own pause is its streaming buffer's

    def header_line(self, line: str, parsed: HTTPHeaders) -> None:
        """One header line from libcurl, with the headers Tornado has parsed so far."""
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        elif line in ("\r\n", "\n") and self.status >= 200:  # not an interim 1xx
            self.headers = parsed
            self.streaming = parsed.get("Content-Type", "").startswith("text/event-stream")
            self._on_headers(self)

    def chunk(self, data: bytes) -> None:
        if not self.done:
            self._on_chunk(data)

    # -- pacing ------------------------------------------------------------------------

    def hold(self) -> None:
        """Receive nothing more from the upstream until `release()`."""
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        """Receive again (no-op unless held); the upload direction keeps its own state."""
        self._held = False
        if not self._receive_paused or self.done or self._curl is None:
            return
        self._receive_paused = False
        sending_paused = self._pipe is not None and self._pipe.paused
        with contextlib.suppress(pycurl.error):  # failed while paused: its fetch reports that
            self._curl.pause(pycurl.PAUSE_SEND if sending_paused else pycurl.PAUSE_CONT)

    @property
    def receiving_paused(self) -> bool:
        """Whether libcurl is not reading the answer now, for us or for Tornado's own buffer."""
        if self._receive_paused:
            return True
        info = getattr(self._curl, "info", None)
        buffer = info.get("streaming_buffer") if info else None
        return bool(buffer and buffer.paused)

    def _prepare_curl(self, curl: pycurl.Curl) -> None:
        """Route libcurl's body writes through `_receive`, and the upload through the pipe."""
        self._curl = curl
        if self._pipe is not None:
            self._pipe.attach(curl, lambda: self.receiving_paused)
        deliver = curl.info["streaming_buffer"].write

        def receive(data: bytes) -> int:
            if self._held:
                self._receive_paused = True
                return pycurl.WRITEFUNC_PAUSE  # libcurl keeps `data` and offers it again on resume
            return deliver(data)

        curl.setopt(pycurl.WRITEFUNCTION, receive)

    async def run(
        self,
        provider: Provider,
        url: str,
        method: str,
        body: bytes | BodyPipe | None,
        headers: Iterable[tuple[str, str]],
        decompress: bool = True,
    ) -> HTTPResponse:
        """Send the request; resolves when the transfer ends (or is cancelled).

        `body` may be a BodyPipe, relaying a body that is still arriving from the client.
        """
        request_headers = HTTPHeaders()
        for name, value in headers:
            request_headers.add(name, value)
        for name, value in provider.headers:
            if name == "anthropic-version" and name in request_headers:
                continue  # the client's own version wins over the default
            request_headers[name] = value
        request_headers["Expect"] = ""
        pipe = self._pipe = body if isinstance(body, BodyPipe) else None
        if pipe is not None and pipe.length is None:
            request_headers["Transfer-Encoding"] = "chunked"
        self.request = HTTPRequest(
            url,
            method=method,
            headers=request_headers,
            body=b"" if pipe is not None else body,
            connect_timeout=provider.connect_timeout,
            request_timeout=provider.timeout,
            header_callback=self.header_line,
            streaming_callback=self.chunk,
            decompress_response=decompress,
            follow_redirects=False,
            allow_nonstandard_methods=True,
            prepare_curl_callback=self._prepare_curl,
        )
        fetched = self._client.fetch(self.request, raise_error=False)
        try:
            # Shielded: a cancelled try (a deadline, a lost hedge) stops the transfer itself,
            # and the fetch then ends with its own cancellation error rather than meeting a
            # cancelled future (which Tornado would log as an error).
            return await asyncio.shield(fetched)
        except CurlError as exc:  # transport failures raise even with raise_error=False
            return HTTPResponse(self.request, 599, error=exc, request_time=0.0)
        except asyncio.CancelledError:
            fetched.add_done_callback(_retrieved)
            self.cancel()
            raise
        finally:
            self.done = True
            self._curl = None  # libcurl reuses the handle for other requests

    def cancel(self) -> None:
        """Stop the transfer: the client is gone, or the answer cannot be relayed.

        No more chunks are delivered from now on; the handle itself is removed on the
        next IOLoop turn, as this may be called from inside a chunk's delivery.
        """
        if self.request is not None and not self.done:
            self.done = True
            IOLoop.current().add_callback(self._client.cancel, self.request)


def _retrieved(fetched: asyncio.Future[HTTPResponse]) -> None:
    """Take the outcome of a fetch nobody awaits any more, so that it is not reported as lost."""
    if not fetched.cancelled():
        fetched.exception()
