"""HTTP/1.1 client connections on asyncio transports, in place of Tornado's HTTPServer.

Tornado's server path (HTTP1ServerConnection, HTTP1Connection, IOStream) cost about
150 µs of CPU per request before any handler ran: coroutines and futures per read and
write, a 64 KiB buffer cleared per read, Nagle toggled per answer
(`python -m bench.server_floor`). Here one `asyncio.Protocol` per client connection
parses requests from what the transport hands it and writes answers straight to it.

It speaks to the rest of Tornado as HTTP1ServerConnection does: each request gets an
`Exchange`, the `httputil.HTTPConnection` its handler writes through, and the
router's delegate (server/limits.Guard around server/dispatch.Dispatch) is told of
the head, the body and its end. What it keeps of Tornado's behaviour: keep-alive and
HTTP/1.0 rules, pipelining one request at a time, Content-Length and chunked request
bodies delivered as they come (with the delegate's futures pausing the socket: a
streamed upload is read no faster than it is sent on), `Expect: 100-continue`, chunked
answers when no length is given, HEAD, and an idle limit on waiting for a request.
Malformed requests get a 400 in OpenAI's error shape (the route is not known yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tornado import httputil
from tornado.netutil import bind_sockets

from handlers.errors import error_body
from handlers.headers import joined
from ops import metrics
from server.app import TableRouter
from server.request_head import GatewayRequest, read_fields, request_line

log = logging.getLogger("gateway")

# A head's end, CRLF or LF: the LF of its last line, then an empty line. Starting with the LF,
# the search skips ahead to each one as a byte search (a leading optional CR, as `\r?\n\r?\n`,
# makes it try every position); a CR just before that LF is part of the end (`_head_size`).
_HEAD_END = re.compile(rb"\n\r?\n")
_HEX = re.compile(rb"[0-9a-fA-F]+")
# Past this much request line and headers without their end, 431 before any route is known;
# server.max_header_size (at most this) is the Guard's, in the route's shape.
HEAD_MAX = 2 * 1024 * 1024
_CHUNK_SIZE_LINE = 64  # longest chunk-size line read (Tornado's bound too)
_PIPELINED_MAX = 64 * 1024  # read no further ahead while an answer is being made
_REFUSAL_HEAD_BYTES = 16 * 1024
_REFUSAL_WAIT = 1.0
_REFUSALS_READING = 64  # past the cap, at most this many refused connections are read from at once
_NO_BODY_CODES = frozenset({204, 304})


class Reading:
    """What a client connection is doing: one of these unique values, compared with `is`.

    Not an enum.Enum: on Python 3.11 each read of an Enum member (`Reading.HEAD`) is a call of
    EnumType.__getattr__, about 1 K instructions, and a connection reads its state several
    times per request."""

    HEAD = 1  # waiting for a request line and headers
    BODY = 2  # reading the current request's body
    ANSWERING = 3  # the request is read; its answer is being made
    REFUSING = 4  # past the connection cap: reading a head only to answer 503 in its shape
    CLOSED = 5


class MalformedRequest(Exception):
    """The request cannot be read; the connection answers 400 and closes. Its message is ours,
    never the client's bytes (which may carry a token)."""


class Exchange(httputil.HTTPConnection):
    """One request's side of a client connection: what its handler writes through."""

    def __init__(self, connection: ClientConnection, start_line: httputil.RequestStartLine,
                 headers: httputil.HTTPHeaders) -> None:
        self.connection = connection
        self.context = connection.context
        self.version = start_line.version
        self.head_only = start_line.method == "HEAD"
        # False: the connection closes once this answer is sent. In HTTP/1.0, True only when asked.
        self.keep_alive = _keep_alive(start_line, headers._as_list)
        self.chunking = False
        self.remaining: int | None = None  # body bytes the answer's Content-Length still expects
        self.read_finished = False
        self.write_finished = False
        self.close_callback: Callable[[], None] | None = None

    # -- httputil.HTTPConnection -------------------------------------------------------------

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self.close_callback = callback

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> None:  # type: ignore[override]
        """Send the answer's head (and its first body bytes); unlike Tornado's, no future:
        the handler learns of a slow client through `backed_up` and `when_drained`."""
        assert isinstance(start_line, httputil.ResponseStartLine)
        code = start_line.code
        has_body = code not in _NO_BODY_CODES and not 100 <= code < 200
        fields = headers._as_list  # by normalized name: read and written without HTTPHeaders calls
        lengths = fields.get("Content-Length")
        unframed = not self.head_only and has_body and lengths is None
        self.chunking = unframed and self.version == "HTTP/1.1"
        if unframed and not self.chunking:
            self.keep_alive = False  # HTTP/1.0 has no chunks: only the close ends this answer
        # Written to `fields` as HTTPHeaders' __setitem__ would (one value, the name normalized),
        # without its call: every relayed stream is chunked.
        if self.version == "HTTP/1.1":
            if not self.keep_alive:
                fields["Connection"] = ["close"]
        elif self.keep_alive:  # an HTTP/1.0 client that asked for it
            fields["Connection"] = ["Keep-Alive"]
        if self.chunking:
            fields["Transfer-Encoding"] = ["chunked"]
        if self.head_only or code == 304:
            self.remaining = 0
        elif lengths is not None:
            self.remaining = int(joined(lengths))
        head = _answer_head(code, start_line.reason, fields)
        self.connection.send(head + self._framed(chunk) if chunk else head)

    def write(self, chunk: bytes) -> None:  # type: ignore[override]
        self.connection.send(self._framed(chunk))

    def finish(self) -> None:
        if self.remaining and not self.connection.closed:
            self.connection.close()
            raise httputil.HTTPOutputError(f"tried to write {self.remaining} bytes less than Content-Length")
        if self.chunking:
            self.connection.send(b"0\r\n\r\n")
        self.write_finished = True
        self.close_callback = None
        if not self.read_finished:
            self.keep_alive = False  # the rest of the body is not worth reading: the connection ends
        self.connection.answered(self)

    # -- for the gateway's handlers --------------------------------------------------------------

    def relay(self, data: bytes) -> bool | None:
        """Body bytes of a relayed answer whose headers are out: framed and written at once,
        with no future (the handler's write and flush would buffer, then frame, it). Returns
        `backed_up` after the write, which a stream's every event asks; None when the
        connection is closed (the client left) and nothing was written.

        A stream's every event comes here: `closed` is asked of the transport alone (a
        connection in Reading.CLOSED always has a closing one), and a chunk is framed here."""
        connection = self.connection
        transport = connection.transport
        if transport is None or transport.is_closing():
            return None
        write = transport.write if connection.later is None else connection.later.append
        if self.chunking:  # then there is no length to count down, and the answer is not to a HEAD
            if data:
                write(b"%x\r\n%b\r\n" % (len(data), data))
        elif data and not self.head_only:
            write(self._framed(data))
        return connection.paused_writing

    def write_next_turn(self) -> None:
        """See ClientConnection.write_next_turn."""
        self.connection.write_next_turn()

    @property
    def closed(self) -> bool:
        return self.connection.closed

    @property
    def backed_up(self) -> bool:
        """More than server.write_buffer bytes are written that the client has not taken."""
        return self.connection.paused_writing

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every byte written so far has reached the socket (or it closed)."""
        self.connection.when_drained(callback)

    def _framed(self, chunk: bytes) -> bytes:
        if self.remaining is not None:
            self.remaining -= len(chunk)
            if self.remaining < 0:
                self.connection.close()
                raise httputil.HTTPOutputError("tried to write more data than Content-Length")
        if self.chunking and chunk:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        return chunk


class ClientContext:
    """What a request reads of its connection: the client's address and the scheme."""

    __slots__ = ("address", "remote_ip", "protocol")

    def __init__(self, address: Any) -> None:
        self.address = address
        self.remote_ip = address[0] if isinstance(address, tuple) else "0.0.0.0"
        self.protocol = "http"

    def __str__(self) -> str:
        return self.remote_ip


class ClientConnection(asyncio.Protocol):
    """One client's HTTP/1.1 connection: requests read one at a time, answers written in order."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.router = listener.router
        self.loop = listener.loop
        self.transport: asyncio.Transport | None = None
        self.context = ClientContext(None)
        self.buffer = bytearray()
        self.reading = Reading.HEAD
        self.exchange: Exchange | None = None
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.delegate_finished = False  # the delegate was told of the body's end
        self.body_left: int | None = None  # Content-Length body still to read; None: chunked
        self.chunk_left = 0  # bytes of the current chunk still to read; -1: its CRLF
        self.waiting = False  # the delegate's future is pending: nothing more is read until it is done
        self.expect_continue = False  # the request asked for `100 Continue`, not yet sent
        self.advancing = False
        self.paused_reading = False
        self.paused_writing = False
        self.sent_waiters: list[Callable[[], None]] = []
        self.later: list[bytes] | None = None  # written on the loop's next turn (write_next_turn)
        self.scanned = 0  # where the search for the head's end starts again
        self.head_deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport: not a subclass
        self.transport = transport
        self.context = ClientContext(transport.get_extra_info("peername"))
        listener = self.listener
        if len(listener.connections) >= listener.max_connections:
            if listener.refusing < _REFUSALS_READING:
                listener.refusing += 1
                self.reading = Reading.REFUSING
                self.timer = self.loop.call_later(_REFUSAL_WAIT, self._refuse)
            else:  # a flood: answer at once, without reading
                self._refuse()
            return
        listener.connections.add(self)
        # Past server.write_buffer bytes unsent, pause_writing: a relayed answer's upstream is held
        # until the client has taken them all (resume_writing).
        transport.set_write_buffer_limits(high=listener.router.table.server.write_buffer, low=0)
        self._wait_for_head()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.reading is Reading.REFUSING:
            if _HEAD_END.search(self.buffer) or len(self.buffer) >= _REFUSAL_HEAD_BYTES:
                self._refuse()
            return
        self._advance()

    def eof_received(self) -> bool:
        return False  # a client that stops sending has gone, as Tornado took it: close

    def connection_lost(self, exc: Exception | None) -> None:
        reading = self.reading
        self.reading = Reading.CLOSED
        self.listener.connections.discard(self)
        self._cancel_timer()
        if reading is Reading.REFUSING:
            self.listener.refusing -= 1
        self.paused_writing = False
        exchange, delegate = self.exchange, self.delegate
        self.exchange = self.delegate = None
        if exchange is not None and not exchange.write_finished:
            if delegate is not None and not self.delegate_finished:
                self._call(delegate.on_connection_close)
            elif exchange.close_callback is not None:
                callback, exchange.close_callback = exchange.close_callback, None
                self._call(callback)
        self._sent()

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._sent()
        if self.reading is Reading.HEAD:
            self._flow()
            if self.buffer:  # a pipelined request held back while the client did not read
                self.loop.call_soon(self._advance)

    # -- writing, for the request's Exchange ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.reading is Reading.CLOSED or self.transport is None or self.transport.is_closing()

    def holds(self, size: int) -> bool:
        """Whether the next `size` bytes of the request have already been read (a small body
        comes in the same packet as its head)."""
        return len(self.buffer) >= size

    def send(self, data: bytes) -> None:
        if self.later is not None:
            self.later.append(data)
            return
        transport = self.transport  # `closed`, without its call: an answer's head and end come here
        if transport is not None and not transport.is_closing() and self.reading is not Reading.CLOSED:
            transport.write(data)

    def write_next_turn(self) -> None:
        """Hold what is written from now on until the loop's next turn, in order.

        For a stream's last event: the upstream's end usually comes in the same read, and wakes the
        handler's task on the next turn, which writes the answer's end (the last chunk). uvloop
        writes what a turn wrote in one system call, so the client gets the event and the end in
        one write (and one wake-up) rather than two, one turn apart."""
        if self.later is None:
            self.later = []
            self.loop.call_soon(self._write_later)

    def _write_later(self) -> None:
        later, self.later = self.later, None
        if not later:
            return
        transport = self.transport  # as `send` asks
        if transport is not None and not transport.is_closing() and self.reading is not Reading.CLOSED:
            transport.writelines(later)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """`callback` at resume_writing (the buffer is empty: its low-water mark is 0), or now."""
        if self.paused_writing and not self.closed:
            self.sent_waiters.append(callback)
        else:
            callback()

    def answered(self, exchange: Exchange) -> None:
        """The current request's answer is written: close, or read the next request."""
        if exchange is not self.exchange:
            return
        if not exchange.keep_alive:
            self.close()
            return
        if not exchange.read_finished:  # cannot be: finish() turned keep_alive off
            return
        self.exchange = self.delegate = None
        self.reading = Reading.HEAD
        self._wait_for_head()
        self._flow()
        if self.buffer:  # a pipelined request: read on the next turn, after this handler's own end
            self.loop.call_soon(self._advance)

    def close(self) -> None:
        """Close once what is written has been sent (what is held for the next turn too)."""
        if self.transport is not None and not self.transport.is_closing():
            self._write_later()
            self.transport.close()

    def _sent(self) -> None:
        """Everything written has reached the socket (or it closed): the waiters run on the next
        turn, not inside the transport's own callback (a released upstream writes at once)."""
        waiters, self.sent_waiters = self.sent_waiters, []
        for waiter in waiters:
            self.loop.call_soon(waiter)

    # -- reading ---------------------------------------------------------------------------

    def _advance(self) -> None:
        """Read what the buffer holds, as far as the current request allows."""
        if self.advancing:
            return
        self.advancing = True
        try:
            while not self.waiting:
                reading = self.reading
                if reading is Reading.HEAD:
                    if self.paused_writing:  # the client is not taking its answers: no next one yet
                        break
                    if not self._read_head():
                        break
                elif reading is Reading.BODY:
                    if not self._read_body():
                        break
                else:
                    break
        except MalformedRequest as exc:
            self._malformed(str(exc))
        except Exception:  # a defect of ours: this connection ends, the server serves on
            log.exception("uncaught exception reading a request from %s", self.context)
            if self.transport is not None:
                self.transport.abort()
        finally:
            self.advancing = False
        self._flow()

    def _read_head(self) -> bool:
        buffer = self.buffer
        # Blank lines before a request are ignored (a byte's value first: startswith parses its arguments).
        while buffer and buffer[0] in (10, 13) and buffer.startswith((b"\r\n", b"\n")):
            del buffer[: 2 if buffer[0] == 13 else 1]  # 13: CR
            self.scanned = 0
        found = _HEAD_END.search(buffer, max(0, self.scanned - 3))
        if found is None:
            self.scanned = len(buffer)
            if len(buffer) > HEAD_MAX:
                self._too_large()
            return False
        head_size = _head_size(buffer, found)
        # Its lines up to the last one's LF, each without its LF: a CR before an LF is the line's
        # own, read (or refused, when stray) with it.
        lines = buffer[: found.start()].decode("latin-1").split("\n")
        del buffer[: found.end()]
        self.scanned = 0
        self.head_deadline = 0.0  # the head is in: no idle limit on it now (see _wait_for_head)
        try:
            start_line = request_line(lines[0])
            headers = read_fields(lines[1:])
        except httputil.HTTPInputError as exc:
            raise MalformedRequest(str(exc)) from None
        self._begin(start_line, headers, head_size)
        return True

    def _begin(
        self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders, head_size: int
    ) -> None:
        fields = headers._as_list  # by normalized name (read_fields): one dict lookup each
        coding, length = fields.get("Transfer-Encoding"), fields.get("Content-Length")
        if coding is not None:
            if length is not None:
                raise MalformedRequest("both Transfer-Encoding and Content-Length")
            if joined(coding).lower() != "chunked":
                raise MalformedRequest("unsupported Transfer-Encoding")
            self.body_left, self.chunk_left = None, 0
        elif length is not None:
            self.body_left = _content_length(length)
        else:
            self.body_left = 0
        exchange = Exchange(self, start_line, headers)
        try:
            request = GatewayRequest(start_line, headers, exchange, self, head_size)
        except httputil.HTTPInputError as exc:
            raise MalformedRequest(str(exc)) from None
        self.exchange = exchange
        delegate = self.delegate = self.router.find_handler(request)
        self.delegate_finished = False
        self.reading = Reading.BODY
        self.expect_continue = fields.get("Expect") == ["100-continue"]
        try:  # what _call does, in place (as for the body and its end): a call less per request
            pending = delegate.headers_received(start_line, headers)
        except Exception:
            pending = self._delegate_failed()
        if pending is not None:  # a handler that streams the body, or a refusal's end
            self._wait(pending)
        if self.expect_continue and not self.waiting:
            self._continue()

    def _continue(self) -> None:
        """`Expect: 100-continue` is answered once the delegate has taken the head without an answer."""
        expected, self.expect_continue = self.expect_continue, False
        exchange = self.exchange
        if expected and self.reading is Reading.BODY and exchange is not None and not exchange.write_finished:
            self.send(b"HTTP/1.1 100 (Continue)\r\n\r\n")

    def _read_body(self) -> bool:
        exchange = self.exchange
        assert exchange is not None
        if exchange.write_finished:  # answered before its body was read: the connection is closing
            self.buffer.clear()
            return False
        buffer = self.buffer
        if self.body_left is not None:  # a Content-Length body
            if self.body_left and buffer:
                taken = min(self.body_left, len(buffer))
                self.body_left -= taken
                self._deliver(_take(buffer, taken))
                if self.body_left or self.waiting or exchange.write_finished:
                    return True  # read on, or not, as the delegate says
            elif self.body_left:
                return False
            self._body_read()  # a whole body in one piece ends here, not on another turn of the loop
            return True
        if self.chunk_left > 0:
            if not buffer:
                return False
            taken = min(self.chunk_left, len(buffer))
            self.chunk_left -= taken
            self._deliver(_take(buffer, taken))
            if not self.chunk_left:
                self.chunk_left = -1
            return True
        if self.chunk_left == -1:  # the CRLF that ends a chunk's data
            if len(buffer) < 2:
                return False
            if buffer[:2] != b"\r\n":
                raise MalformedRequest("improperly terminated chunk")
            del buffer[:2]
            self.chunk_left = 0
            return True
        end = buffer.find(b"\r\n", 0, _CHUNK_SIZE_LINE)
        if end < 0:
            if len(buffer) >= _CHUNK_SIZE_LINE:
                raise MalformedRequest("invalid chunk size")
            return False
        size = bytes(buffer[:end])
        if not _HEX.fullmatch(size):
            raise MalformedRequest("invalid chunk size")
        self.chunk_left = int(size, 16)
        if self.chunk_left:
            del buffer[: end + 2]
            return True
        if len(buffer) < end + 4:
            return False
        if buffer[end + 2 : end + 4] != b"\r\n":
            raise MalformedRequest("improperly terminated chunked request")
        del buffer[: end + 4]
        self._body_read()
        return True

    def _deliver(self, data: bytes) -> None:
        if self.delegate is not None and not self.exchange.write_finished:  # type: ignore[union-attr]
            try:
                pending = self.delegate.data_received(data)
            except Exception:
                pending = self._delegate_failed()
            if pending is not None:  # a streaming handler is passing the piece on: read on after
                self._wait(pending)

    def _body_read(self) -> None:
        exchange, delegate = self.exchange, self.delegate
        assert exchange is not None and delegate is not None
        exchange.read_finished = True
        self.reading = Reading.ANSWERING
        if not exchange.write_finished:
            self.delegate_finished = True
            try:
                delegate.finish()
            except Exception:
                self._delegate_failed()
        elif exchange is self.exchange:  # answered while its body was read: the answer's end closes
            self.close()

    def _wait(self, pending: Any) -> None:
        """Read nothing more until the delegate's future `pending` is done (a streamed body's
        handler is ready, or has passed the last piece on)."""
        if pending is None:
            return
        future = asyncio.ensure_future(pending)
        if future.done():
            return
        self.waiting = True
        self._flow()
        future.add_done_callback(self._waited)

    def _waited(self, _: Awaitable[None]) -> None:
        self.waiting = False
        if self.reading is Reading.CLOSED:
            return
        self._continue()
        self._advance()

    def _flow(self) -> None:
        """Read from the socket only while what is read can be used: not while the delegate's
        future is pending, nor past _PIPELINED_MAX bytes read ahead of the request being
        answered, nor while the client is not taking its answers and the next request would only
        add to them. So a connection holds at most one head (HEAD_MAX) or _PIPELINED_MAX bytes of
        requests, whatever a client sends."""
        transport = self.transport  # `closed`, without its call (twice per request)
        if self.reading in (Reading.CLOSED, Reading.REFUSING) or transport is None or transport.is_closing():
            return
        if self.reading is Reading.HEAD:  # a head known to be incomplete is read on, to HEAD_MAX
            unsearched = len(self.buffer) > _PIPELINED_MAX and self.scanned < len(self.buffer)
            hold = self.waiting or self.paused_writing or unsearched
        else:
            hold = self.waiting or len(self.buffer) > _PIPELINED_MAX
        if hold != self.paused_reading:
            self.paused_reading = hold
            if hold:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """A delegate's method: an exception is logged and ends the connection, as in Tornado.
        (The delegate's three calls of every request, for its head, body and end, do the same in
        place: a call less each, and no tuple of arguments.)"""
        try:
            return method(*args)
        except Exception:
            return self._delegate_failed()

    def _delegate_failed(self) -> None:
        """A delegate's method raised (the exception is being handled): logged, and the connection
        ends."""
        log.exception("uncaught exception serving %s", self.context)
        if self.transport is not None:
            self.transport.abort()

    # -- limits ------------------------------------------------------------------------------

    def _wait_for_head(self) -> None:
        """Close the connection if no whole request head arrives within server.idle_timeout: one
        timer per connection, moved only when it fires early."""
        self.head_deadline = self.loop.time() + self.listener.idle_timeout
        if self.timer is None:
            self.timer = self.loop.call_at(self.head_deadline, self._head_wait_over)

    def _head_wait_over(self) -> None:
        self.timer = None
        if self.reading is not Reading.HEAD or not self.head_deadline:
            return
        if self.loop.time() >= self.head_deadline:
            self.close()
        else:
            self.timer = self.loop.call_at(self.head_deadline, self._head_wait_over)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _malformed(self, reason: str) -> None:
        log.info("Malformed HTTP message from %s: %s", self.context, reason)
        self._answer_and_close(400, "Bad Request", error_body("openai", 400, f"malformed request: {reason}",
                                                            "malformed_request"))

    def _too_large(self) -> None:
        message = f"request line and headers exceed {HEAD_MAX} bytes"
        self._answer_and_close(431, "Request Header Fields Too Large",
                               error_body("openai", 431, message, "headers_too_large"))

    def _answer_and_close(self, status: int, reason: str, body: bytes, extra: str = "") -> None:
        """A refusal made here, before (or instead of) any delegate: its answer, then the close."""
        exchange, delegate = self.exchange, self.delegate
        if (exchange is not None and delegate is not None and not exchange.write_finished
                and not self.delegate_finished):
            self._call(delegate.on_connection_close)
        self.exchange = self.delegate = None
        self.buffer.clear()
        if exchange is None or not exchange.write_finished:
            head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode()
            self.send(head + body)
        self.close()
        self.reading = Reading.CLOSED

    def _refuse(self) -> None:
        """Past server.max_connections: a 503 in the shape of the route the head names (as far as
        it was read within a second), then the close."""
        self._cancel_timer()
        if self.reading is Reading.REFUSING:
            self.listener.refusing -= 1
            self.reading = Reading.HEAD
        metrics.REFUSED.labels(reason="too_many_connections").inc()
        ingress = "openai"
        found = _HEAD_END.search(self.buffer)
        if found is not None:
            with contextlib.suppress(httputil.HTTPInputError, ValueError):
                ingress = self.router.ingress_for_head(bytes(self.buffer[: found.end()]))
        body = error_body(ingress, 503, "too many connections; retry shortly", "too_many_connections")
        self._answer_and_close(503, "Service Unavailable", body, "Retry-After: 1\r\n")


def _answer_head(code: int, reason: str, fields: dict[str, list[str]]) -> bytes:
    """An answer's status line and header lines (`fields`: by name, as HTTPHeaders holds them);
    a CR or LF in any of them would split the head, and raises ValueError."""
    lines = [_status_text(code, reason)]
    for name, values in fields.items():  # loops, not a comprehension: one call fewer
        for value in values:
            lines.append(f"{name}: {value}")
    inside = "".join(lines)  # two byte searches of this: counting CRs and LFs costs more
    if "\r" in inside or "\n" in inside:
        raise ValueError("illegal characters (CR or LF) in the answer's headers")
    lines.append("\r\n")  # the blank line that ends the head
    return "\r\n".join(lines).encode("latin-1")


@functools.lru_cache(maxsize=64)
def _status_text(code: int, reason: str) -> str:
    """An answer's status line without its CRLF: made once per status, not per answer."""
    return f"HTTP/1.1 {code} {reason}"


def _head_size(buffer: bytearray, end: re.Match[bytes]) -> int:
    """Bytes of request line and headers before `end` (a match of _HEAD_END) and its CR if any."""
    start = end.start()
    return start - 1 if start and buffer[start - 1] == 13 else start  # 13: CR


def _take(buffer: bytearray, size: int) -> bytes:
    """The first `size` bytes of `buffer`, removed from it."""
    if size == len(buffer):
        data = bytes(buffer)
        buffer.clear()
        return data
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def _content_length(lines: list[str]) -> int:
    """The request's Content-Length from its field lines: digits only; repeated values (more
    lines, or a list in one) must agree."""
    value = lines[0].strip()
    if len(lines) > 1 or "," in value:
        values = {v.strip() for v in ",".join(lines).split(",")}
        if len(values) != 1:
            raise MalformedRequest("multiple unequal Content-Lengths")
        value = values.pop()
    if not value.isdigit() or not value.isascii():
        raise MalformedRequest("Content-Length is not a whole number")
    return int(value)


def _keep_alive(start_line: httputil.RequestStartLine, fields: dict[str, list[str]]) -> bool:
    """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked, and only
    when the request's end is known without the connection's. `fields`: by normalized name."""
    lines = fields.get("Connection")
    connection = joined(lines).lower() if lines else ""
    if start_line.version == "HTTP/1.1":
        return connection != "close"
    framed = ("Content-Length" in fields or "Transfer-Encoding" in fields
              or start_line.method in ("HEAD", "GET"))
    return framed and connection == "keep-alive"


class Listener:
    """The gateway's listening sockets and the client connections they accepted."""

    def __init__(self, router: TableRouter, *, max_connections: int, idle_timeout: float) -> None:
        self.router = router
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.loop = asyncio.get_running_loop()
        self.connections: set[ClientConnection] = set()
        self.refusing = 0  # refused connections whose request head is being read
        self.servers: list[asyncio.AbstractServer] = []

    async def listen(self, port: int, host: str) -> None:
        """Bind as Tornado did (SO_REUSEADDR, every address of `host`, backlog 128), then serve."""
        await self.add_sockets(bind_sockets(port, host))

    async def add_sockets(self, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            sock.setblocking(False)
            self.servers.append(await self.loop.create_server(lambda: ClientConnection(self), sock=sock))

    def stop(self) -> None:
        """Accept no more connections; those open go on."""
        for server in self.servers:
            server.close()

    async def close_all_connections(self) -> None:
        """Close every client connection, and wait until each has gone."""
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        while self.connections:
            await asyncio.sleep(0.01)
