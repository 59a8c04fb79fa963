"""/proxy/{provider}/{path*}: any method, any path under a configured provider's base URL.

The path is checked in its raw form and after every round of percent-decoding,
so that no spelling of '..', a backslash or an absolute URL leaves the
provider's base.
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

from converters.sse import SSEFramer
from handlers.base import GatewayHandler
from handlers.errors import stream_error_event
from handlers.relay import CLIENT_PRIVATE, Exchange, relayable
from ops import metrics
from upstream.client import error_kind

_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f]|://|^/|^[A-Za-z][A-Za-z0-9+.-]*:")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def unsafe_path(raw: str) -> str | None:
    """Why `raw` (still percent-encoded) may not be forwarded, or None when it is safe."""
    seen = raw
    for _ in range(4):
        if _FORBIDDEN.search(seen):
            return "backslashes, control characters and absolute URLs are not allowed"
        if any(segment in (".", "..") for segment in seen.split("/")):
            return "dot segments are not allowed"
        decoded = unquote(seen)
        if decoded == seen:
            return None
        seen = decoded
    return "too many levels of percent-encoding"


class PassthroughHandler(GatewayHandler):
    """Relays the exchange as is, apart from credentials and hop-by-hop headers."""

    async def get(self, provider: str, path: str) -> None:
        target = self.table.providers.get(provider)
        if target is None:
            return self.fail(404, f"no provider named '{provider}' is configured", "unknown_provider")
        raw_path = path  # the matcher hands path parameters over still percent-encoded
        reason = unsafe_path(raw_path)
        if reason is not None:
            return self.fail(400, f"refused proxy path: {reason}", "bad_path")
        url = f"{target.base_url}/{raw_path}"
        if self.request.query:
            url += "?" + self.request.query
        self.model_label = provider
        framer: SSEFramer | None = None

        def on_headers(exchange: Exchange) -> None:
            nonlocal framer
            self.adopt_upstream_headers(exchange)
            framer = SSEFramer() if exchange.streaming else None

        def on_chunk(data: bytes) -> None:
            out = framer.feed(data) if framer is not None else data
            if out:
                self.mark_first_byte()
                self.write(out)
                self.flush()

        exchange = self.exchange = Exchange(on_headers, on_chunk)
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
        if self.client_gone:
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
        if framer is not None:
            self.write(framer.close())
        self.finish()

    post = put = patch = delete = options = head = get
