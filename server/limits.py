"""What a request must pass before its body is read: limits and credentials.

Checked when the request line and headers have arrived (server/http1.py reads
them), so an oversized head or body, a body that never finishes, or a caller
without a valid token gets an answer in the route's error shape with the right
status, before any body byte is read and before any `100 Continue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from tornado import httputil

from dsl.table import Table
from handlers.auth import Denial, authorize
from handlers.base import GatewayHandler, access_entry, close_after_answer, request_id
from handlers.errors import error_body
from ops import metrics
from runtime.process import Runtime
from server.dispatch import Dispatch
from server.request_head import GatewayRequest

if TYPE_CHECKING:
    from server.http1 import ClientConnection


class Guard(Dispatch):
    """One routed request's delegate: refuses what is too big, too slow or not allowed, and
    dispatches the rest (one object, where a Guard around a Dispatch cost a call per step)."""

    request: GatewayRequest

    def __init__(
        self,
        request: GatewayRequest,
        handler_class: type[GatewayHandler],
        handler_kwargs: dict[str, Any],
        path_kwargs: dict[str, str],
        table: Table,
        runtime: Runtime,
        draining: bool = False,
    ) -> None:
        """`draining`: the server is shutting down; this connection ends with this request."""
        Dispatch.__init__(self, request, handler_class, handler_kwargs, path_kwargs)
        self.table = table
        self.settings = table.server
        self.runtime = runtime
        self.draining = draining
        self.buffered = not self.stream_request_body
        self.received = 0
        self.reserved = 0  # bytes of the body budget this request holds
        self.refused = False
        self.inner_started = False  # the Dispatch was told of the head
        self.timer: asyncio.TimerHandle | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        limit = self.settings.max_header_size
        head = self.request.head_size
        # The head holds the request line, counted below with its CRLF (at most 2 more than the
        # head's size without its end): a head 2 bytes within the limit needs neither check.
        if head + 2 > limit:
            line = len(start_line.method) + len(start_line.path) + len(start_line.version) + 4
            if line > limit:
                return self.refuse(414, f"request line exceeds {limit} bytes", "uri_too_long")
            if head > limit:
                return self.refuse(431, f"request line and headers exceed {limit} bytes", "headers_too_large")
        if self.route.auth:
            verdict = authorize(self.table.keys, self.route, start_line.method, self.request.path, headers)
            if isinstance(verdict, Denial):
                metrics.AUTH_DENIED.labels(reason=verdict.reason).inc()
                return self.refuse(verdict.status, verdict.message, verdict.code, counted=False)
            self.principal = verdict
        connection: ClientConnection = self.request.server_connection  # type: ignore[assignment]
        announced = connection.body_left  # its Content-Length, as the connection read it; None: chunked
        if announced is not None and announced > self.settings.max_body:
            return self.refuse(413, f"request body exceeds {self.settings.max_body} bytes", "body_too_large")
        if announced != 0:
            if self.buffered and not self._reserve(announced or 0):
                return self._buffers_full()
            if not (announced and connection.holds(announced)):  # else no wait to time
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(self.settings.body_timeout, self._body_timed_out)
        if self.draining:
            close_after_answer(self.request)
        self.inner_started = True
        return self._execute() if self.stream_request_body else None  # Dispatch's headers_received

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None
        self.received += len(chunk)
        if self.received > self.settings.max_body:
            return self.refuse(413, f"request body exceeds {self.settings.max_body} bytes", "body_too_large")
        unreserved = self.received - self.reserved  # a chunked body is counted as it arrives
        if self.buffered:
            if unreserved > 0 and not self._reserve(unreserved):
                return self._buffers_full()
            if self.chunks is not None:  # Dispatch's own step for a buffered body, without its call
                self.chunks.append(chunk)
            return None
        return Dispatch.data_received(self, chunk)

    def finish(self) -> None:
        if self.timer is not None:  # asked here: a small body's request has no timer to stop
            self._stop_timer()
        if self.reserved:
            self._release()
        if not self.refused:
            Dispatch.finish(self)

    def on_connection_close(self) -> None:
        self._stop_timer()
        self._release()
        if not self.refused:
            Dispatch.on_connection_close(self)

    def _body_timed_out(self) -> None:
        self.timer = None
        self.refuse(408, f"request body not received within {self.settings.body_timeout:g}s", "body_timeout")

    def _reserve(self, size: int) -> bool:
        if not self.runtime.bodies.take(size, self.settings.max_buffered_bodies):
            return False
        self.reserved += size
        return True

    def _release(self) -> None:
        self.runtime.bodies.give_back(self.reserved)
        self.reserved = 0

    def _buffers_full(self) -> None:
        self.refuse(503, "the gateway is receiving too many request bodies; retry shortly",
                    "too_many_bodies", {"Retry-After": "1"})

    def refuse(
        self, status: int, message: str, code: str, extra: dict[str, str] | None = None, counted: bool = True
    ) -> None:
        """Answer now and close the connection; Tornado discards the rest of the body.

        `counted`: as a server-limit refusal (gateway_requests_refused_total, by `code`).
        """
        self.refused = True
        self._stop_timer()
        self._release()
        if counted:
            metrics.REFUSED.labels(reason=code).inc()
        handler_ran = self.inner_started and not self.buffered
        if self.inner_started:
            Dispatch.on_connection_close(self)  # a streaming handler may have started upstream
        rid = request_id(self.request.headers, self.runtime.request_ids)
        body = error_body(self.route.ingress, status, message, code)
        headers = httputil.HTTPHeaders(
            {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close",
             "x-request-id": rid, **(extra or {})}
        )
        connection = self.request.connection
        assert connection is not None
        sent = b"" if self.request.method == "HEAD" else body  # HEAD: the length is told, not the body
        connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses[status]), headers, sent
        )
        connection.finish()
        if not handler_ran:  # else the handler has counted the request (as 499)
            self._account(status, rid, len(sent))

    def _account(self, status: int, rid: str, sent: int) -> None:
        """A request that no handler saw, in the request metrics and the access log all the same."""
        elapsed = self.request.request_time()
        self.runtime.metrics.requests[self.route.match, status, ""].inc()
        self.runtime.metrics.seconds[self.route.match].observe(elapsed)
        if self.settings.access_log:
            entry = access_entry(self.request, self.route, status, rid, elapsed, bytes_out=sent)
            self.runtime.access_log.write(entry)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
