"""Limits on what clients send, enforced before a handler sees the request.

Tornado's own limits close the connection with a bare 400 (or nothing). The
gateway's are checked here first, so an oversized body or header block, or a
body that never finishes, gets an answer in the route's error shape with the
right status. Tornado's limits are set well above these and stay as a backstop.
"""

from __future__ import annotations

from collections.abc import Awaitable

from tornado import httputil
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from dsl.table import ServerSettings
from handlers.errors import error_body
from ops import metrics

# Hard limits given to Tornado: past these it drops the connection without an answer.
HARD_MAX_HEADER_SIZE = 2 * 1024 * 1024
HARD_MAX_BODY_SIZE = 1 << 40

_REASONS = {
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    408: "Request Timeout",
    503: "Service Unavailable",
}


class Guard(httputil.HTTPMessageDelegate):
    """Wraps the routed delegate of one request; refuses what is too big or too slow."""

    def __init__(
        self,
        inner: httputil.HTTPMessageDelegate,
        connection: httputil.HTTPConnection,
        ingress: str,
        settings: ServerSettings,
    ) -> None:
        self.inner = inner
        self.connection = connection
        self.ingress = ingress
        self.settings = settings
        self.received = 0
        self.refused = False
        self.inner_started = False
        self.timer: object | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        header_bytes = sum(len(k) + len(v) + 4 for k, v in headers.get_all())
        if header_bytes > self.settings.max_header_size:
            return self.refuse(
                431, "headers_too_large", f"request headers exceed {self.settings.max_header_size} bytes"
            )
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.settings.max_body:
            return self.refuse(413, "body_too_large", f"request body exceeds {self.settings.max_body} bytes")
        if (length is not None and length != "0") or "Transfer-Encoding" in headers:
            self.timer = IOLoop.current().call_later(self.settings.body_timeout, self._body_timed_out)
        self.inner_started = True
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None
        self.received += len(chunk)
        if self.received > self.settings.max_body:
            return self.refuse(413, "body_too_large", f"request body exceeds {self.settings.max_body} bytes")
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self._stop_timer()
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        self._stop_timer()
        if not self.refused:
            self.inner.on_connection_close()

    def _body_timed_out(self) -> None:
        self.timer = None
        self.refuse(408, "body_timeout", f"request body not received within {self.settings.body_timeout:g}s")

    def refuse(self, status: int, reason: str, message: str) -> None:
        """Answer now and close the connection; Tornado discards the rest of the body."""
        self.refused = True
        self._stop_timer()
        metrics.REFUSED.labels(reason=reason).inc()
        if self.inner_started:
            self.inner.on_connection_close()  # a streaming handler may have started upstream
        body = error_body(self.ingress, status, message, reason)
        headers = httputil.HTTPHeaders(
            {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close"}
        )
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, _REASONS[status]), headers, body
        )
        self.connection.finish()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None


def refuse_connection(stream: IOStream) -> None:
    """Past server.max_connections: a clean 503 instead of a reset, then close."""
    metrics.REFUSED.labels(reason="too_many_connections").inc()
    body = error_body("openai", 503, "too many connections; retry shortly", "too_many_connections")
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    ).encode()
    stream.write(head + body).add_done_callback(lambda _: stream.close())
