"""A reusable libcurl easy handle: what never changes is set once, the rest per request.

Its callbacks are set once too: header lines are collected as they come (appended by
libcurl itself, no call of ours per line) and handed to the transfer the handle serves now
before the body's first chunk, or by `hand_over` as the transfer ends (an answer with no
body); body chunks and upload reads go to it as they come. Each request sets every option
a previous one may have changed (method, body, sizes) unless it is the same as the last
request's (most requests repeat the last one's URL, method and timeouts), and `clean` drops what
it held (its transfer, libcurl's copy of its body unless small: the next request sets its own body
or method over it), so nothing of one request reaches the next.

An exception raised in a callback is logged and fails that transfer with a message
of ours: left to pycurl, it would print a traceback and abort with a confusing error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import pycurl

from upstream.body_pipe import BodyPipe
from upstream.driver import Driver
from upstream.request import Request

log = logging.getLogger("gateway.upstream")

# CURLOPT_SUPPRESS_CONNECT_HEADERS (libcurl 7.54), which pycurl 7.49 names no constant for:
# through a proxy (libcurl honours `https_proxy` from the environment), the proxy's answer to
# CONNECT stays out of the header lines, where it would pass for the provider's head.
SUPPRESS_CONNECT_HEADERS = 265

CONSTANT_OPTIONS = (
    (pycurl.NOSIGNAL, 1),
    (SUPPRESS_CONNECT_HEADERS, 1),
    (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
    (pycurl.FOLLOWLOCATION, 0),  # a provider's redirect is relayed as it is
    (pycurl.TCP_NODELAY, 1),
    (pycurl.TCP_KEEPALIVE, 1),
    # HTTP/2 where an https upstream offers it (ALPN): new transfers then share its connection.
    # No PIPEWAIT: with it, libcurl (8.23) made a transfer wait for a busy HTTP/1.1 connection to
    # the same host, so one held stream (a slow reader) stalled every other request to it.
    (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS),
    (pycurl.ENCODING, "gzip,deflate"),  # relayed decoded: content-encoding is hop-by-hop here
    (pycurl.USERAGENT, "Mozilla/5.0 (compatible; pycurl)"),  # a client's own User-Agent wins
    # libcurl gives every transfer a 64 KiB upload buffer, even for a body it sends whole:
    # 16 KiB keeps an open stream's memory small (about 30 KiB less each).
    (pycurl.UPLOAD_BUFFERSIZE, 16384),
)

# libcurl's copy of a body this small stays with the idle handle until the next request sets its
# own body or method (never sent again): one setopt less per request, at most this much per handle.
KEPT_BODY = 4096


class Transfer(Protocol):
    """What a handle feeds while it serves a request (upstream/exchange.py)."""

    fault: str | None

    @property
    def receiving_paused(self) -> bool:
        """Whether the answer's direction is paused (resuming the upload must keep it so)."""
        ...

    def head(self, lines: list[bytes]) -> None:
        """The header lines read so far: complete heads, each ended by its blank line, a
        final one among them unless the transfer ended early (see upstream/response_head.py)."""
        ...

    def receive(self, data: bytes) -> int | None: ...


class Handle:
    """One pooled easy handle, `curl`; `transfer` is the request it serves now (None: idle).

    It holds its Curl rather than being one: pycurl keeps a Curl subclass's attributes in
    a dictionary of its own and looks there only after Python's lookup failed, so each
    read of a subclass's attribute raised and caught an AttributeError (about 0.6 µs, eight
    times per request and twice per streamed chunk).
    """

    __slots__ = ("curl", "driver", "transfer", "deliver", "pipe", "posted", "lines", "_setopt", "_url",
                 "_timeouts", "_method")

    def __init__(self, driver: Driver) -> None:
        self.curl = curl = pycurl.Curl()
        self.driver = driver  # the multi handle it always runs on: its connections are pooled there
        self._setopt = setopt = curl.setopt
        self.transfer: Transfer | None = None
        # Where body chunks go: the transfer's `receive`, or what it put in its place
        # (Exchange.relay_straight).
        self.deliver: Callable[[bytes], int | None] = _nowhere
        self.lines: list[bytes] = []  # header lines not handed over yet (libcurl appends them)
        self.pipe: BodyPipe | None = None
        self.posted = 0  # the size of the body libcurl holds a copy of (POSTFIELDS)
        # What the last request set that the next one may well want alike: each option is set
        # only when it changes (most requests repeat the last one's), three to six calls less.
        self._url: str | None = None  # libcurl keeps its own copy of the URL set last
        self._timeouts: tuple[int, int] | None = None
        self._method: tuple[str, bool] | None = None  # method, and whether a body came whole
        for option, value in CONSTANT_OPTIONS:
            setopt(option, value)
        setopt(pycurl.HEADERFUNCTION, self.lines.append)
        setopt(pycurl.WRITEFUNCTION, self._write)
        setopt(pycurl.READFUNCTION, self._read)

    def prepare(self, request: Request, transfer: Transfer) -> None:
        """Set what this request changes; ValueError / pycurl.error when libcurl refuses it."""
        body, setopt = request.body, self._setopt
        if request.url != self._url:
            self._url = None  # until set
            setopt(pycurl.URL, request.url)
            self._url = request.url
        setopt(pycurl.HTTPHEADER, request.header_lines)
        timeouts = (request.timeout_ms, request.connect_timeout_ms)
        if timeouts != self._timeouts:
            self._timeouts = None  # until both are set
            setopt(pycurl.TIMEOUT_MS, timeouts[0])
            setopt(pycurl.CONNECTTIMEOUT_MS, timeouts[1])
            self._timeouts = timeouts
        if isinstance(body, BodyPipe):
            self._method = None  # the upload mode stays set: the next request resets it
            self._set_method(request.method, body, transfer)
        elif (method := (request.method, body is not None)) != self._method:
            self._method = None  # until set whole
            self._set_method(request.method, body, transfer)
            self._method = method
        elif body is not None:  # the method stands as the last request set it (POSTFIELDS too)
            setopt(pycurl.POSTFIELDS, body)
            self.posted = len(body)
        self.transfer = transfer
        self.deliver = transfer.receive

    def _set_method(self, method: str, body: bytes | BodyPipe | None, transfer: Transfer) -> None:
        """The method and body options, each set (those a previous request may have changed too)."""
        setopt = self._setopt
        setopt(pycurl.HTTPGET, 1)  # the method back to GET, with a body expected back
        if body is None:
            if method == "HEAD":
                setopt(pycurl.NOBODY, 1)
            plain = method in ("GET", "HEAD")
        elif isinstance(body, bytes):
            setopt(pycurl.POSTFIELDS, body)  # libcurl sends it whole; pycurl sets its size
            self.posted = len(body)
            plain = method == "POST"
        else:
            setopt(pycurl.UPLOAD, 1)  # read from the pipe as the client sends it
            setopt(pycurl.INFILESIZE_LARGE, -1 if body.length is None else body.length)
            self.pipe = body
            body.attach(self.curl, lambda: transfer.receiving_paused)
            plain = method == "PUT"
        setopt(pycurl.CUSTOMREQUEST, None if plain else method)

    def clean(self) -> None:
        """The transfer is over: let go of what it held, so the handle is ready for any request."""
        self.transfer = None
        self.deliver = _nowhere
        self.lines.clear()
        if self.pipe is not None:
            self.pipe.detach()
            self.pipe = None
        if self.posted > KEPT_BODY:
            self._setopt(pycurl.POSTFIELDS, b"")  # drop libcurl's copy of the body
            self.posted = 0

    # -- libcurl's callbacks ---------------------------------------------------------------

    def hand_over(self, transfer: Transfer) -> bool:
        """Hand the header lines read so far to `transfer`; False when that failed it."""
        lines = self.lines
        try:
            transfer.head(lines)
        except Exception:
            self._failed(transfer, "reading the answer's headers")
            return False
        finally:
            lines.clear()
        return True

    def _write(self, data: bytes) -> int | None:
        transfer = self.transfer
        if transfer is None:
            return None
        if self.lines and not self.hand_over(transfer):  # the head, before the body's first chunk
            return 0
        try:
            return self.deliver(data)
        except Exception:
            return self._failed(transfer, "relaying the answer")

    def _read(self, size: int) -> bytes | int:
        pipe, transfer = self.pipe, self.transfer
        if pipe is None or transfer is None:
            return b""
        try:
            return pipe.read(size)
        except Exception:
            self._failed(transfer, "sending the request body")
            return pycurl.READFUNC_ABORT

    @property
    def held_back(self) -> bool:
        """Whether the gateway itself paused the transfer: the answer waits for a slow client
        reader, or the request body for the client's next chunk. Not the upstream's silence
        (upstream/idle.py)."""
        transfer, pipe = self.transfer, self.pipe
        return (transfer is not None and transfer.receiving_paused) or (pipe is not None and pipe.paused)

    @staticmethod
    def _failed(transfer: Transfer, doing: str) -> int:
        """Log the exception and fail the transfer: a short write makes libcurl end it."""
        log.exception("internal error %s", doing)
        transfer.fault = f"internal error {doing}"
        return 0


def _nowhere(data: bytes) -> None:
    """Where an idle handle's chunks would go (libcurl writes none outside a transfer)."""
