"""What every gateway handler shares: the compiled route, auth, errors, request ids, metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, cast

from tornado import httputil
from tornado.httputil import HTTPHeaders, HTTPServerRequest, format_timestamp

from access.keys import Principal
from converters.sse import EventTooLarge
from converters.upstream_errors import UpstreamError
from converters.usage import Usage
from dsl.handler_rules import HandlerRules
from dsl.table import Route, Table
from handlers.errors import error_body, stream_error_event
from handlers.headers import Headers, normalize_name
from handlers.upstream_url import encode_path
from limits.limiter import Ticket
from ops import metrics
from ops.request_ids import RequestIds
from ops.stats import MAX_LABEL_LENGTH
from redaction.policy import Policy
from runtime.process import Runtime
from stages import stage
from upstream.attempt import Broken, Converted, Deliver, Head, Outcome, Reading, Sink, steady_deliver
from upstream.exchange import Exchange
from upstream.failure import CIRCUIT_OPEN, ErrorAnswer, Failure
from upstream.hedge import Race

log = logging.getLogger("gateway.handlers")

ALL_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
# The handler method serving each request method.
_METHOD_NAMES = MappingProxyType({method: method.lower() for method in ALL_METHODS})
# A model name becomes a metric label, a /statsz key and part of log lines and error messages:
# real ones are short and printable, so longer names and control characters are refused.
MAX_MODEL_NAME = 256
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A client's x-request-id is echoed, logged and sent upstream: kept only when short and plain.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")

_LOGGED_PATH = 2048  # a longer path is logged cut (a 414 may carry megabytes)
MAX_TRIED = 8  # targets listed in an access-log line's `tried`; a longer walk logs its first ones

# What an answer header's value may hold (RFC 9110 field values): no CR, LF or NUL.
_HEADER_VALUE = re.compile(r"[\x09\x20-\x7e\x80-\xff]*")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1f]")  # in a query value: as Tornado, a space
_NO_BODY_STATUSES = (204, 304)
# How a stream's last event usually ends, OpenAI's and Anthropic's (handler.send: written with the
# answer's end). Another form costs only the one write more.
LAST_EVENTS = (b"data: [DONE]\n\n", b'data: {"type":"message_stop"}\n\n')
# Each one's fourth byte from its end (before `]\n\n`, `"}\n\n`): what most other events' is not.
_LAST_EVENT_MARKS = frozenset(event[-4] for event in LAST_EVENTS)
# An answer without a body sends none of these (RFC 9110 8.3, 8.5, 8.6: a 304's, as Tornado's).
_REPRESENTATION_HEADERS = ("Content-Encoding", "Content-Language", "Content-Type")


def _logged_path(path: str) -> str:
    """The request path for the log: cut at _LOGGED_PATH, raw non-ASCII bytes and control
    characters percent-encoded, so that no byte a client sent (a NEL, say) can split the line
    for a log reader."""
    if len(path) > _LOGGED_PATH:
        path = path[:_LOGGED_PATH]
    return path if path.isascii() and path.isprintable() else encode_path(path)


def request_id(headers: HTTPHeaders, ids: RequestIds) -> str:
    """The client's x-request-id when it is short and plain (and one), else a fresh one of `ids`."""
    given = headers._as_list.get("X-Request-Id")  # by normalized name: one lookup
    return given[0] if given and len(given) == 1 and _REQUEST_ID.fullmatch(given[0]) else ids.fresh()


@functools.lru_cache(maxsize=1)
def http_date(second: int) -> str:
    """The Date header's value at `second` (Unix time): made once a second, not per answer."""
    return format_timestamp(second)


@functools.lru_cache(maxsize=64)
def status_line(code: int, reason: str) -> httputil.ResponseStartLine:
    """The answer's status as the connection takes it: made once per status, not per answer
    (a NamedTuple costs a Python-level call to build)."""
    return httputil.ResponseStartLine("", code, reason)


class ClientSocket(Protocol):
    """What a relayed stream's steady path writes to (server/http1.ClientConnection): its
    later events, framed, go straight to the transport, as ClientWrites.relay would send them."""

    transport: asyncio.Transport | None
    later: list[bytes] | None  # what is written is held here until the loop's next turn (when not None)
    paused_writing: bool  # backed up: past server.write_buffer bytes the client has not taken

    def write_next_turn(self) -> None: ...


class ClientWrites(Protocol):
    """What a request's connection (server/http1.Exchange) offers beyond Tornado's HTTPConnection."""

    keep_alive: bool  # False: the connection closes once this answer is sent
    chunking: bool  # the answer is sent in chunks (known once its head is written)
    connection: ClientSocket

    @property
    def closed(self) -> bool: ...
    @property
    def backed_up(self) -> bool: ...  # past server.write_buffer bytes the client has not taken
    # Body bytes, framed and sent now (headers are out): backed_up, or None when closed (none sent).
    def relay(self, data: bytes) -> bool | None: ...
    def when_drained(self, callback: Callable[[], None]) -> None: ...  # once all is sent (or closed)
    def write_next_turn(self) -> None: ...  # what is written until the loop's next turn: then, in one write


def close_after_answer(request: HTTPServerRequest) -> None:
    """Close the connection once this answer is sent, and say so in it (an HTTP/1.0 answer
    without a length can only end that way, even when keep-alive was asked for)."""
    cast(ClientWrites, request.connection).keep_alive = False


def access_entry(
    request: HTTPServerRequest, route: Route, status: int, request_id: str | None, elapsed: float,
    upstream_status: int | None = None, model: str | None = None, agent: str | None = None,
    key: str | None = None, bytes_in: int | None = None, bytes_out: int = 0, ttfb: float | None = None,
) -> dict[str, Any]:
    """One access-log line. Names only: never a token, a key or a query string.

    Requests refused before a handler ran (limits, authentication) log it as it is;
    handlers give model, key, upstream status, bytes and time to first byte (seconds).
    """
    # The numbers as round(time.time(), 3) and round(seconds * 1000, 2) give them, at less than
    # half the cost (round with digits goes through decimal digits): the time in whole ms, an
    # int; a duration is a difference of time.time() values, a multiple of 2**-22 s, so that
    # times 100_000 it is exact, and rounds to whole 10 µs just as round(..., 2) rounds it.
    duration_ms = round(elapsed * 100_000) / 100
    return {
        "ts": (time.time_ns() + 500_000) // 1_000_000 / 1000,
        "request_id": request_id,
        "method": request.method,
        "path": _logged_path(request.path),
        "route": route.match,
        "status": status,
        "upstream_status": upstream_status,
        "model": model,
        "agent": agent,
        "key": key,
        "client": request.remote_ip,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "ttfb_ms": duration_ms if ttfb is None else round(ttfb * 100_000) / 100,
        "duration_ms": duration_ms,
    }


class GatewayHandler:
    """Base for routes compiled from routes.yaml. Holds the table it started with, and the runtime.

    It answers one request: `prepare`, then the method named by the request's (`post`, `get`…),
    the answer built with `set_status`, `set_header`, `write` and ended by `finish`. This is the
    part of Tornado's RequestHandler the gateway uses, without its per-request machinery
    (transforms, template namespace, XSRF, ETags, form parsing). A handler a route can name
    sets `rules` (handlers.registry lists them).
    """

    SUPPORTED_METHODS = ALL_METHODS
    # True: the body is handed to `data_received` as it arrives, and the method runs once it has
    # all arrived (`prepare` runs when the head has); else the method runs with `request.body`.
    streams_body: ClassVar[bool] = False
    rules: ClassVar[HandlerRules]
    route: Route
    table: Table
    runtime: Runtime
    principal: Principal | None = None
    model_label: str = ""
    ttfb: float | None = None  # seconds from request to first body byte sent
    exchange: Exchange | None = None
    client_gone = False
    usage: Usage | None = None
    bytes_out = 0
    _counted = False  # counted in flight (by `prepare`), until `_account` counts the answer
    tried: list[dict[str, Any]] | None = None  # the targets a walk tried, for the access log
    race: Race | None = None  # a hedged walk's tries (upstream/hedge.py)
    ticket: Ticket | None = None  # what the limiter holds for this request until `finish_limits`
    limit_headers: Mapping[str, str] = MappingProxyType({})  # x-ratelimit-* of the key's limits
    redaction: Policy | None = None  # the answer's redaction policy (stages/redaction.py)
    redactions: dict[str, dict[str, int]] | None = None  # matches replaced, by direction and kind
    # A streamed body's end: True once it has all arrived, False when the client left first.
    body_arrived: asyncio.Future[bool] | None = None
    # Resolved once `prepare` is over, for the server to read the body only after it.
    prepared: asyncio.Future[None] | None = None

    @classmethod
    def for_route(cls, route: Route) -> type[GatewayHandler]:
        """The class that serves `route`: this one, unless a route option asks for a variant."""
        return cls

    def __init__(
        self, request: HTTPServerRequest, path_kwargs: dict[str, str], principal: Principal | None,
        arguments: Mapping[str, Any],
    ) -> None:
        """`path_kwargs`: the route's path parameters, as matched (still percent-encoded);
        `principal`: who the Guard authenticated when the headers arrived (None: route has no auth);
        `arguments`: the route's handler arguments, its `route`, `table` and `runtime` (and what a
        handler's `initialize` takes), read from the route's own dict: no ** unpacking per request."""
        self.request = request
        self.path_kwargs = path_kwargs
        self.principal = principal
        self.route = arguments["route"]
        self.table = arguments["table"]
        self.runtime = arguments["runtime"]
        self._headers_written = False
        self._finished = False
        self.clear()
        request.connection.set_close_callback(self.on_connection_close)  # type: ignore[union-attr]
        self.initialize(arguments)

    def initialize(self, arguments: Mapping[str, Any]) -> None:
        """A handler's own arguments from the route's (nothing here)."""

    async def run(self) -> None:
        """Serve the request: `prepare`, the method (for a streamed body, once it has arrived),
        then `finish` if the method did not. An exception is logged and answered with a 500
        in the client's shape (or ends an answer already begun); never a traceback to the client."""
        try:
            method = self.request.method or ""
            name = _METHOD_NAMES.get(method) or method.lower()
            serve = getattr(self, name, None) if method in self.SUPPORTED_METHODS else None
            result = self.prepare()
            if result is not None:
                await result
            if self.prepared is not None and not self.prepared.done():
                self.prepared.set_result(None)
            if self._finished:
                return
            if serve is None:
                self.send_error(405)
                return
            if self.body_arrived is not None and not await self.body_arrived:
                return  # the client left before its body ended; on_connection_close has run
            result = serve(**self.path_kwargs) if self.path_kwargs else serve()  # no ** of an empty dict
            if result is not None:
                await result
            if not self._finished:
                self.finish()
        except (Exception, asyncio.CancelledError) as error:
            self._failed(error)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            if self.prepared is not None and not self.prepared.done():
                self.prepared.set_result(None)  # the server reads (and discards) the rest

    def _failed(self, error: BaseException) -> None:
        """An exception escaped the handler: logged, and a 500 when nothing was answered yet."""
        if not isinstance(error, asyncio.CancelledError):
            log.error("unhandled error on %s (request %s)", self.route.match,
                      getattr(self, "request_id", "-"), exc_info=error)
        if not self._finished:
            try:
                self.send_error(500)
            except Exception:
                log.exception("could not answer the error of request %s", getattr(self, "request_id", "-"))

    def clear(self) -> None:
        """The answer's defaults: 200, no body, a Date header and Tornado's Content-Type (the
        gateway does not advertise what it runs on with a `Server` header)."""
        date = http_date(int(time.time()))
        self._headers = Headers({"Content-Type": ["text/html; charset=UTF-8"], "Date": [date]})
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = "OK"

    def set_status(self, status_code: int) -> None:
        self._status_code = status_code
        self._reason = httputil.responses.get(status_code, "Unknown")

    def get_status(self) -> int:
        return self._status_code

    def set_header(self, name: str, value: str | int) -> None:
        # Headers.__setitem__'s one step, without its call (handlers/headers.py allows it).
        self._headers._as_list[normalize_name(name)] = [header_value(value)]

    def add_header(self, name: str, value: str | int) -> None:
        """Another value of `name` (an upstream's answer may repeat a header)."""
        self._headers.add(name, header_value(value))

    def clear_header(self, name: str) -> None:
        if name in self._headers:
            del self._headers[name]

    def get_query_argument(self, name: str, default: str) -> str:
        """The last value of the query parameter `name` (stripped, as Tornado's), else `default`."""
        values = self.request.query_arguments.get(name)
        if not values:
            return default
        return _CONTROL_CHARACTERS.sub(" ", values[-1].decode("utf-8", "replace")).strip()

    # -- lifecycle ---------------------------------------------------------------------

    def prepare(self) -> None:
        self.runtime.in_flight += 1
        if not self.runtime.gauge_follows:
            metrics.IN_FLIGHT.inc()
        self._counted = True
        self.request_id = request_id(self.request.headers, self.runtime.request_ids)
        # set_header's checks are for values of unknown shape: a request id is always plain.
        self._headers._as_list["X-Request-Id"] = [self.request_id]

    def refuses_model_name(self, model: str) -> bool:
        """Answer 400 (and say so) when `model` is empty, longer than MAX_MODEL_NAME or unprintable."""
        if not model:
            problem = "'model' must not be empty"
        elif len(model) > MAX_MODEL_NAME:
            problem = f"'model' is longer than {MAX_MODEL_NAME} characters"
        # A printable ASCII name (the usual one) is told in two quick steps, before the search.
        elif not (model.isascii() and model.isprintable()) and _UNPRINTABLE.search(model):
            problem = "'model' contains control characters"
        else:
            return False
        self.fail(400, problem, "invalid_model")
        return True

    def deny(self, status: int, reason: str, message: str) -> None:
        """Refuse access after the body was read (authentication itself is the Guard's);
        counted by reason, never by token."""
        metrics.AUTH_DENIED.labels(reason=reason).inc()
        self.fail(status, message, "invalid_api_key" if status == 401 else reason)

    def on_connection_close(self) -> None:
        """The client left: stop the upstream transfer now, count the request as 499 (as nginx)."""
        self.client_gone = True
        log.debug("client closed the connection (request %s)", getattr(self, "request_id", "-"))
        if self.exchange is not None:
            self.exchange.cancel()
        if self.race is not None:
            self.race.cancel()
        if not self._finished:
            self._account(499)

    def _account(self, status: int) -> None:
        if not self._counted:
            return
        self._counted = False
        self.runtime.in_flight -= 1
        if not self.runtime.gauge_follows:
            metrics.IN_FLIGHT.dec()
        route = self.route.match
        elapsed = time.time() - self.request._start_time  # request_time() (no finish time), without its call
        counted = self.runtime.metrics
        counted.requests[route, status, self.model_label].inc()
        counted.seconds[route].observe(elapsed)
        principal = self.principal
        key = None if principal is None else principal.name  # principal_name, without its call
        if self.model_label:
            self.runtime.stats.observe(self.model_label, status, elapsed, key)
        if not self.table.server.access_log:
            return
        # The access log's line, here rather than in a method of its own: one call less per request.
        model, body = self.model_label, self.request.body
        entry = access_entry(  # by position: a call by keywords costs half as much again
            self.request, self.route, status, getattr(self, "request_id", None), elapsed,
            None if self.exchange is None else self.exchange.status,  # upstream_status
            model or None,  # model
            model if model in self.table.agents else None,  # agent
            key,
            len(body) if body else None,  # bytes_in
            self.bytes_out,
            self.ttfb,
        )
        if self.usage is not None and self.usage.reported:
            entry["tokens"] = {"input": self.usage.input, "output": self.usage.output,
                               "cached": self.usage.cached, "reasoning": self.usage.reasoning}
        if self.tried:
            entry["tried"] = self.tried
        if self.redactions:
            entry["redactions"] = self.redactions
        self.runtime.access_log.write(entry)

    def note_try(self, label: str, failure: Failure | None = None) -> None:
        """One target's outcome for the access log's `tried`: its label (a configured name, or a
        provider/model name as bounded as model names are), status, and the failure's kind.

        Called before the answer ends (the log line is written when it does).
        """
        tried = self.tried
        if tried is None:
            tried = self.tried = []
        if len(tried) >= MAX_TRIED:
            return
        entry: dict[str, Any] = {"target": label[:MAX_LABEL_LENGTH]}
        if failure is None:
            entry["status"] = self.exchange.status if self.exchange is not None else None
        else:
            entry["status"] = failure.status or None
            entry["kind"] = failure.kind
        tried.append(entry)

    def note_skip(self, label: str) -> None:
        """A target the walk skipped because its breaker is open, for the access log."""
        self.note_try(label, Failure(label, label, 0, CIRCUIT_OPEN, "circuit open"))

    def note_walk(self, failures: list[Failure] | None) -> None:
        """After a walk: a failure that tried no target (every breaker open) is logged too."""
        if failures and self.tried is None:
            self.note_try(failures[-1].label, failures[-1])

    def record_usage(self, usage: Usage | None) -> None:
        """Tokens the upstream reported: counted per model and key, and logged with the request."""
        self.usage = usage
        principal = self.principal  # principal_name, without its call
        self.runtime.stats.add_usage(self.model_label, usage, None if principal is None else principal.name)

    def write(self, chunk: str | bytes) -> None:
        """Add `chunk` to the answer's body; it is sent by `flush` or `finish`."""
        if self._finished:
            raise RuntimeError("write() after finish()")
        if isinstance(chunk, str):
            chunk = chunk.encode()
        self.bytes_out += len(chunk)
        self._write_buffer.append(chunk)

    def flush(self) -> None:
        """Send what is written: the status line and headers first, if not sent yet."""
        buffered = self._write_buffer
        chunk = buffered[0] if len(buffered) == 1 else b"".join(buffered)
        self._write_buffer = []
        connection: Any = self.request.connection
        head_only = self.request.method == "HEAD"
        if not self._headers_written:
            self._headers_written = True
            connection.write_headers(
                status_line(self._status_code, self._reason), self._headers,
                b"" if head_only else chunk,
            )
        elif chunk and not head_only:
            connection.write(chunk)

    def finish(self, chunk: str | bytes | None = None) -> None:
        """End the answer (with `chunk` last): its length is told when no byte was sent yet."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        if chunk is not None:
            self.write(chunk)
        if not self._headers_written:
            status = self._status_code
            if status in _NO_BODY_STATUSES or 100 <= status < 200:
                if self._write_buffer:
                    raise RuntimeError(f"an answer with status {status} has no body")
                for name in _REPRESENTATION_HEADERS:
                    self.clear_header(name)
            elif "Content-Length" not in self._headers._as_list:  # handlers/headers.py: one dict step
                buffered = self._write_buffer  # a buffered answer is one chunk: its length, not a sum
                size = len(buffered[0]) if len(buffered) == 1 else sum(map(len, buffered))
                self._headers._as_list["Content-Length"] = [str(size)]
        connection: Any = self.request.connection
        connection.set_close_callback(None)
        if self._write_buffer or not self._headers_written:  # else (a relayed stream's end) nothing to flush
            self.flush()
        connection.finish()
        self._finished = True
        self._account(self._status_code)

    def send_error(self, status: int) -> None:
        """An error the handler did not answer itself (an exception: 500), in the client's shape,
        discarding what was written and not sent; an answer already begun can only end (short)."""
        if self._headers_written:
            if not self._finished:
                self.finish()
            return
        message = httputil.responses.get(status, "Unknown") if status < 500 else "internal gateway error"
        self._answer_error(status, error_body(self.route.ingress, status, message), {})

    def count_redactions(self, direction: str, kind: str, count: int) -> None:
        """Matches redaction replaced (`kind` is a configured name): metrics, /statsz and the
        access log, never a value."""
        if self.redactions is None:
            self.redactions = {}
        counts = self.redactions.setdefault(direction, {})
        counts[kind] = counts.get(kind, 0) + count
        metrics.REDACTIONS.labels(direction=direction, kind=kind).inc(count)
        self.runtime.stats.add_redactions(direction, kind, count)

    # -- answers -----------------------------------------------------------------------

    @property
    def principal_name(self) -> str | None:
        return self.principal.name if self.principal is not None else None

    def begin(self, head: Head) -> None:
        """Answer with `head`'s status and headers; the provider's own replace all of ours but
        the request id (the provider's request id is kept as x-upstream-request-id)."""
        self.set_status(head.status)
        if head.upstream:
            for name in list(self._headers):
                if name.lower() != "x-request-id":
                    self.clear_header(name)
            for name, value in head.headers:
                self.add_header(name, value)
            for name, value in self.limit_headers.items():
                self.set_header(name, value)
        else:
            fields = self._headers._as_list
            for name, value in head.headers:  # set_header's one step, the name already normalized
                fields[name] = [header_value(value)]

    def claim(self) -> bool:
        """The one try of an unhedged walk always has the client."""
        return True

    def send(self, data: bytes) -> None:
        """Relay upstream body bytes to the client now, holding the upstream while it is behind.

        Past `server.write_buffer` bytes that the client's socket has not taken, the exchange
        is held until it has taken them all. A slow reader thus costs about that much memory
        (plus what the upstream client had already read), whatever the answer's size.
        """
        connection: ClientWrites = self.request.connection  # type: ignore[assignment]
        if data.endswith(LAST_EVENTS):
            connection.write_next_turn()  # with the answer's end, which comes on the next turn
        if self.ttfb is not None and self._headers_written and not self._write_buffer and not self._finished:
            # A stream's every event after its first: written at once (write and flush would
            # buffer and join it first).
            backed_up = connection.relay(data)
            if backed_up is None:
                return  # the client left; on_connection_close is on its way and cancels the exchange
            self.bytes_out += len(data)
        else:
            if connection.closed:
                return  # as above
            self.mark_first_byte()
            self.write(data)
            self.flush()
            backed_up = connection.backed_up
        if backed_up:
            self._hold_until_drained(connection)

    def _hold_until_drained(self, connection: ClientWrites) -> None:
        """The client is behind: the exchange is held until its connection has sent all it holds."""
        exchange = self.exchange
        if exchange is not None and not exchange.held:
            exchange.hold()
            connection.when_drained(exchange.release)

    def deliver_steadily(self, exchange: Exchange, feed: Callable[[bytes], bytes], label: str) -> Deliver:
        """A relayed stream's every later chunk, from libcurl's write callback to the client's
        socket in one call: what upstream/attempt.py `steady_deliver`, `send` and the
        connection's `relay` do in three (some 2 K instructions an event less). Asked once the
        client has had bytes twice, so its answer's head is out (a chunked one: else the steps
        as they are); an answer written to or ended meanwhile goes through `send`."""
        client: ClientWrites = self.request.connection  # type: ignore[assignment]
        if self.ttfb is None or not self._headers_written or not client.chunking:
            return steady_deliver(exchange, feed, self, label)
        socket = client.connection
        send = self.send

        def deliver(data: bytes) -> int | None:
            if exchange.held:
                return exchange.pause_receiving()
            if exchange.done:
                return None
            try:
                data = feed(data)
            except EventTooLarge as exc:
                self.end_stream(label, "event_too_large", str(exc))
                return None
            if not data:
                return None
            if self._write_buffer or self._finished:
                send(data)
                return None
            size = len(data)
            # endswith's arguments are parsed (some 1 K instructions): a byte tells most events first
            if size > 3 and data[-4] in _LAST_EVENT_MARKS and data.endswith(LAST_EVENTS):
                socket.write_next_turn()
            transport = socket.transport  # as `relay` asks: a client that left is written nothing
            if transport is None or transport.is_closing():
                return None
            later = socket.later
            if later is None:
                transport.write(b"%x\r\n%b\r\n" % (size, data))
            else:
                later.append(b"%x\r\n%b\r\n" % (size, data))
            self.bytes_out += size
            if socket.paused_writing:
                self._hold_until_drained(client)
            return None

        return deliver

    # -- the Sink an upstream attempt writes to (upstream/attempt.py) ---------------------

    @property
    def committed(self) -> bool:
        return self.ttfb is not None

    def gone(self) -> bool:
        return self.client_gone

    @property
    def over(self) -> bool:
        return self.client_gone or self._finished

    @property
    def stream_format(self) -> str:
        """The format of error events that end a relayed stream."""
        return self.route.ingress

    def end_stream(self, label: str, kind: str, message: str) -> None:
        """Stop relaying an answer that cannot be relayed on: the upstream is cancelled and an
        error event in the client's format ends the stream."""
        metrics.UPSTREAM_ERRORS.labels(provider=label, kind=kind).inc()
        log.warning("ending the stream of request %s: %s: %s", self.request_id, label, message)
        if self.exchange is not None:
            self.exchange.cancel()
        self.mark_first_byte()
        self.finish(stream_error_event(self.stream_format, 502, f"upstream {label}: {message}"))

    def end(self, data: bytes) -> None:
        """The answer ends with `data`: a buffered answer whole, or a relayed one's held-back tail."""
        if data:
            self.mark_first_byte()
            self.write(data)
        self.finish()

    def end_relayed(self, tail: bytes) -> None:
        """The relayed answer ended cleanly; `tail` is what was held back to the end."""
        if tail:
            self.mark_first_byte()
            self.write(tail)
        self.finish()

    def end_broken(self, broken: Broken) -> None:
        """The upstream failed after part of its answer reached the client: a stream ends with
        an error event (it cannot be retried), any other answer just ends short. A timeout
        says which limit it met (idle or whole), in words of libcurl's or ours: no secrets."""
        if broken.exchange.streaming:
            message = f"upstream {broken.label} failed mid-stream"
            if broken.kind == "timeout":
                message += f": {broken.message}"
            self.write(broken.tail + stream_error_event(self.stream_format, 502, message))
        self.finish()

    # -- rate limits and budgets (limits/limiter.py) ---------------------------------------

    @property
    def limited(self) -> bool:
        """Whether any rate limit or budget is declared: without one, `admit_limits` and
        `finish_limits` have nothing to do, and are not awaited (a coroutine per request)."""
        return self.runtime.limiter.settings.enabled

    async def admit_limits(
        self, document: Mapping[str, Any] | None, agent: str | None, prompt: int = 0
    ) -> bool:
        """The API key's and the agent's rate limits and the key's budget, before any upstream;
        False after answering the refusal (429, or 503 when the state store cannot answer and
        `on_state_error` is deny). `prompt`: the prompt's estimate when already made (0: make
        it here). Callers ask `limited` first."""
        limiter = self.runtime.limiter
        tokens = 0 if document is None else limiter.estimate(document, prompt or None)
        decision = await limiter.admit_request(self.principal_name, agent, tokens)
        self.ticket = decision.ticket
        if not decision.allowed:
            answer = decision.answer()
            self.fail(answer.status, answer.message, answer.code, decision.response_headers(), answer.kind)
            return False
        if decision.headers:
            self.limit_headers = decision.headers
            for name, value in decision.headers.items():
                self.set_header(name, value)
        return True

    async def admit_target(self, provider: str, model: str, label: str) -> Failure | None:
        """A target's and its provider's rate limits, before each try: a Failure skips the target
        (and is noted for the access log)."""
        if self.ticket is None:
            return None
        decision = await self.runtime.limiter.admit_target(self.ticket, provider, model)
        if decision.allowed:
            return None
        answer = decision.answer()
        error = UpstreamError(answer.message, answer.kind, answer.code)
        retry_after = decision.response_headers().get("Retry-After")
        refused = Failure(provider, label, answer.status, "over_limit", answer.message, retry_after, error)
        self.note_try(label, refused)
        return refused

    async def finish_limits(self) -> None:
        """Settle the request with the limiter: real usage for reserved tokens, slots released,
        the key's budget charged (no answer: everything reserved given back). Callers await
        it only when a `ticket` is held: without one it has nothing to settle."""
        ticket, self.ticket = self.ticket, None
        if ticket is not None:
            await self.runtime.limiter.finish(ticket, self.usage)

    # -- the route's stages (stages/stage.py) -------------------------------------------

    def refused_by_stages(self, document: dict[str, Any]) -> bool:
        """Run the stages' checks on the request document; True after answering a refusal."""
        refused = stage.refusal(self.route.hooks, self, document)
        if refused is not None:
            self.deny(refused.status, refused.reason, refused.message)
        return refused is not None

    def through_stages(
        self, run: Callable[[Sink], Awaitable[Outcome]], sink: Sink | None = None
    ) -> Awaitable[Outcome]:
        """One upstream attempt (`run(sink)`), inside the stages' `around` hooks, to be awaited;
        the sink is the client (or a hedged try's stand-in for it)."""
        hooks = self.route.hooks
        if not hooks.around:  # the usual: no stage wraps the attempt (stage.around's call spared)
            return run(self if sink is None else sink)
        return stage.around(hooks, self, run, self if sink is None else sink)

    def staged(self, reading: Reading) -> Reading:
        """`reading`, with the stages' answer converters after it (none: `reading` itself)."""
        chain = stage.answer_chain(self.route.hooks, self)
        return reading if chain is None else Converted(reading, chain)

    def staged_body(self, body: bytes) -> bytes:
        """A buffered answer, through the stages' answer converters."""
        chain = stage.answer_chain(self.route.hooks, self)
        return body if chain is None else chain.feed(body) + chain.close()

    def answered(self, usage: Usage | None) -> None:
        """The answer is complete (or ended short): the stages' `done`, accounting among them."""
        stage.done(self.route.hooks, self, usage)

    def answer_error(self, answer: ErrorAnswer) -> None:
        self.fail(answer.status, answer.message, answer.code, answer.headers, answer.type, answer.param)

    def mark_first_byte(self) -> None:
        """Body bytes are about to reach the client: from here on, no fallback."""
        if self.ttfb is None:
            self.ttfb = time.time() - self.request._start_time  # request_time(), without its call
            self.runtime.metrics.first_byte[self.route.match].observe(self.ttfb)

    def fail(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        kind: str | None = None,
        param: str | None = None,
    ) -> None:
        """Answer with an error in the route's client format and end the request.

        `kind` and `param` carry a provider's own error type and parameter through.
        """
        if self._finished:
            return
        body = error_body(self.route.ingress, status, message, code, kind, param)
        self._answer_error(status, body, {**self.limit_headers, **(headers or {})})

    def _answer_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """The error answer in place of whatever was written and not sent: `headers` and the
        request id on it, nothing else of the answer being built."""
        self.clear()
        if hasattr(self, "request_id"):  # set by `prepare`
            self._headers["x-request-id"] = self.request_id
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(body)


def header_value(value: str | int) -> str:
    """A header value as sent: an int as its digits; a string checked, since a CR or LF in it
    would split the answer's head (a header relayed from an upstream is not trusted)."""
    if isinstance(value, int):
        return str(value)
    if value.isascii() and value.isprintable():  # the usual value: checked in two quick steps
        return value
    if _HEADER_VALUE.fullmatch(value) is None:
        raise ValueError("unsafe characters in an answer header's value")
    return value
