"""A request body relayed to libcurl while it is still arriving from the client.

The client's chunks wait here only until libcurl reads them; when none is
waiting, the upload is paused and resumed on the next chunk. Past a high-water
mark the client is slowed instead (Tornado waits for the returned Future), so
memory stays bounded whatever the upload's size.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import pycurl
from tornado.concurrent import Future, future_set_result_unless_cancelled
from tornado.ioloop import IOLoop

HIGH_WATER = 1 << 20  # bytes waiting before the client is slowed down


class BodyPipe:
    """Client chunks in, libcurl READFUNCTION out."""

    def __init__(self, length: int | None) -> None:
        self.length = length  # None: the client sent the body chunked
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._waiting = 0
        self._ended = False
        self._paused = False
        self._curl: pycurl.Curl | None = None
        self._receiving_paused: Callable[[], bool] = lambda: False
        self._drained: Future[None] | None = None

    def attach(self, curl: pycurl.Curl, receiving_paused: Callable[[], bool]) -> None:
        """libcurl reads the body from here (upstream/handle.py) through `curl`.

        `receiving_paused` says whether the answer's direction is paused now, which
        resuming the upload must leave as it is.
        """
        self._curl = curl
        self._receiving_paused = receiving_paused

    def detach(self) -> None:
        """The transfer is over: its handle may serve another request, never to be resumed here."""
        self._curl = None

    def write(self, data: bytes) -> Future[None] | None:
        """A chunk from the client; a Future to wait on when too much is already waiting."""
        if data:
            self._chunks.append(memoryview(data))
            self._waiting += len(data)
            self._resume()
        if self._waiting > HIGH_WATER:
            self._drained = Future()
            return self._drained
        return None

    def end(self) -> None:
        """The client's body is complete."""
        self._ended = True
        self._resume()

    @property
    def paused(self) -> bool:
        """libcurl waits for the client's next chunk (resuming the answer must keep it so)."""
        return self._paused

    def read(self, size: int) -> bytes | int:
        """libcurl's READFUNCTION: up to `size` bytes, b"" at the end, or a pause."""
        if not self._chunks:
            if self._ended:
                return b""
            self._paused = True
            return pycurl.READFUNC_PAUSE
        chunk = self._chunks[0]
        if len(chunk) <= size:
            self._chunks.popleft()
        else:
            self._chunks[0] = chunk[size:]
            chunk = chunk[:size]
        self._waiting -= len(chunk)
        if self._drained is not None and self._waiting <= HIGH_WATER // 2:
            # Inside a libcurl callback: resume the client from the IOLoop, not from here.
            IOLoop.current().add_callback(future_set_result_unless_cancelled, self._drained, None)
            self._drained = None
        return bytes(chunk)

    def _resume(self) -> None:
        if self._paused and self._curl is not None:
            self._paused = False
            self._curl.pause(pycurl.PAUSE_RECV if self._receiving_paused() else pycurl.PAUSE_CONT)
