"""/proxy/{provider}/{path*}: any method, any path under a configured provider's base URL.

The path is checked in its raw form and after every round of percent-decoding
(handlers/upstream_url.py), so that no spelling of '..', a backslash, a '#' or an
absolute URL leaves the provider's base. A provider's error answer may quote the
key it was sent: that key is taken out of every relayed header and error body.
"""

from __future__ import annotations

import time

from converters.sse import EventTooLarge, SSEFramer
from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import Route, Table
from handlers.base import GatewayHandler
from handlers.errors import stream_error_event
from handlers.relay import CLIENT_PRIVATE, Exchange, KeyScrubber, relayable
from handlers.upstream_url import encode_path, encode_query, unsafe_path
from ops import metrics
from upstream.client import error_kind

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _needs_provider_and_path(check: RouteCheck) -> RouteOptions:
    if not {"provider", "path"} <= check.params:
        check.error(("match",), "a passthrough route needs {provider} and {path*} in its path")
    return {}


def _provider_urls(route: Route, table: Table) -> str:
    return ", ".join(f"{p.name}={p.base_url}" for p in table.providers.values())


class PassthroughHandler(GatewayHandler):
    """Relays the exchange as is, apart from credentials and hop-by-hop headers."""

    rules = HandlerRules("passthrough", admin=True, check=_needs_provider_and_path, upstream=_provider_urls)

    async def get(self, provider: str, path: str) -> None:
        target = self.table.providers.get(provider)
        if target is None:
            return self.fail(404, f"no provider named '{provider}' is configured", "unknown_provider")
        raw_path = path  # the matcher hands path parameters over still percent-encoded
        reason = unsafe_path(raw_path)
        if reason is not None:
            return self.fail(400, f"refused proxy path: {reason}", "bad_path")
        url = f"{target.base_url}/{encode_path(raw_path)}"
        if self.request.query:
            url += "?" + encode_query(self.request.query)
        self.model_label = provider
        framer: SSEFramer | None = None
        scrubber: KeyScrubber | None = None

        def on_headers(exchange: Exchange) -> None:
            nonlocal framer, scrubber
            self.adopt_upstream_headers(exchange, target)
            framer = SSEFramer() if exchange.streaming else None
            # Providers quote a key only when refusing it; a 2xx body is the client's data.
            scrubber = KeyScrubber(target.key) if target.key and exchange.status >= 400 else None

        def relay(data: bytes) -> None:
            try:
                out = framer.feed(data) if framer is not None else data
            except EventTooLarge as exc:
                return self.end_stream("openai", provider, "event_too_large", str(exc))
            if out:
                self.send(out)

        def on_chunk(data: bytes) -> None:
            relay(scrubber.feed(data) if scrubber is not None else data)

        exchange = self.exchange = Exchange(self.runtime.upstream, on_headers, on_chunk)
        body = self.request.body if self.request.method in _BODY_METHODS else None
        started = time.monotonic()
        response = await exchange.run(
            target,
            url,
            self.request.method,
            body,
            relayable(self.request.headers, CLIENT_PRIVATE),
            decompress=True,
        )
        metrics.UPSTREAM_SECONDS.labels(provider=provider).observe(time.monotonic() - started)
        if self.client_gone or self._finished:
            return
        if response.code == 599:
            kind = error_kind(response)
            metrics.UPSTREAM_ERRORS.labels(provider=provider, kind=kind).inc()
            if self.ttfb is None:
                status = 504 if kind == "timeout" else 502
                return self.fail(status, f"upstream {provider} failed: {kind}", kind)
            if framer is not None:
                self.write(stream_error_event("openai", 502, f"upstream {provider} failed mid-stream"))
            return self.finish()
        if scrubber is not None:
            relay(scrubber.close())
        if self._finished:
            return
        if framer is not None:
            self.write(framer.close())
        self.finish()

    post = put = patch = delete = options = head = get
