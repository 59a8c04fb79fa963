"""The pycurl upstream client: streaming, keep-alive, and cancellation.

One CurlAsyncHTTPClient per process (held by the runtime) is shared by every
table, so a reload never disturbs transfers in flight and upstream connections
stay pooled across reloads. Tornado's client cannot abort a transfer; `cancel` adds that, so a
client that goes away stops the upstream at once instead of at its next byte.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders

log = logging.getLogger("gateway.upstream")

HeaderCallback = Callable[[str, HTTPHeaders], None]

# curl error codes that mean "the provider is unreachable or too slow": retryable.
CONNECT_ERRORS = frozenset(
    {
        pycurl.E_COULDNT_CONNECT,
        pycurl.E_COULDNT_RESOLVE_HOST,
        pycurl.E_OPERATION_TIMEDOUT,
        pycurl.E_GOT_NOTHING,
        pycurl.E_SEND_ERROR,
        pycurl.E_RECV_ERROR,
        pycurl.E_SSL_CONNECT_ERROR,
    }
)
CANCELLED = pycurl.E_ABORTED_BY_CALLBACK


class UpstreamClient(CurlAsyncHTTPClient):
    """CurlAsyncHTTPClient that can cancel a request mid-transfer.

    Header lines are also delivered at once rather than via the IOLoop: Tornado hands
    the last body chunks over synchronously when a transfer ends, and they must never
    overtake the headers that say how to treat them. The callback also gets the headers
    Tornado has parsed so far, so that they are not parsed twice.
    """

    def _curl_header_callback(
        self, headers: HTTPHeaders, header_callback: HeaderCallback | None, header_line_bytes: bytes
    ) -> None:
        super()._curl_header_callback(headers, None, header_line_bytes)
        if header_callback is not None:
            try:
                header_callback(header_line_bytes.decode("latin1"), headers)  # type: ignore[call-arg]
            except Exception:
                log.exception("header callback failed")

    def cancel(self, request: HTTPRequest) -> bool:
        """Abort `request` (queued or running); its fetch resolves with a CANCELLED error."""
        log.debug("cancelling upstream request to %s", request.url)
        for curl in self._curls:
            info = getattr(curl, "info", None)
            if info is not None and _unwrap(info["request"]) is request:
                # Removing the handle mid-transfer makes libcurl close that connection,
                # so the provider sees the disconnect now.
                self._finish(curl, CANCELLED, "cancelled: client went away")
                self._process_queue()
                return True
        queue: collections.deque = self._requests  # type: ignore[has-type]
        for entry in list(queue):
            if _unwrap(entry[0]) is request:
                queue.remove(entry)
                entry[1](
                    HTTPResponse(request, 599, error=CurlError(CANCELLED, "cancelled"), request_time=0.0)
                )
                return True
        return False


def _unwrap(request: HTTPRequest) -> HTTPRequest:
    """fetch() wraps each request in a proxy that applies the client's defaults."""
    return getattr(request, "request", request)


def open_client(max_clients: int) -> UpstreamClient:
    """A client of its own with `max_clients` parallel transfers, bound to the running IOLoop."""
    return UpstreamClient(force_instance=True, max_clients=max_clients, max_body_size=1 << 40)

