"""/proxy/{provider}/{path*}: any method, any path under a configured provider's base URL.

The path is checked in its raw form and after every round of percent-decoding
(handlers/upstream_url.py), so that no spelling of '..', a backslash, a '#' or an
absolute URL leaves the provider's base. A provider's error answer may quote the
key it was sent: that key is taken out of every relayed header and error body.
"""

from __future__ import annotations

from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import Route, Table
from handlers.base import GatewayHandler
from handlers.upstream_url import encode_path, encode_query, unsafe_path
from upstream.attempt import Broken, Relayed, UpstreamRequest, attempt, walk
from upstream.failure import Failure, relay_answer
from upstream.headers import CLIENT_PRIVATE, relayable
from upstream.pass_on import PassOn

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
        body = self.request.body if self.request.method in _BODY_METHODS else None
        headers = tuple(relayable(self.request.headers, CLIENT_PRIVATE))
        request = UpstreamRequest(target, provider, url, self.request.method, body, headers)
        failures = await walk((request,), self._try, self.gone)
        if failures:
            self.answer_error(relay_answer(failures[-1]))

    async def _try(self, request: UpstreamRequest, more: bool) -> Failure | None:
        reading = PassOn(request.provider)
        outcome = await self.through_stages(
            lambda sink: attempt(self.runtime.upstream, request, self.staged(reading), sink)
        )
        if isinstance(outcome, Relayed):
            self.end_relayed(outcome.tail)
        elif isinstance(outcome, Broken):
            self.end_broken(outcome)
        return outcome if isinstance(outcome, Failure) else None

    @property
    def stream_format(self) -> str:
        return "openai"  # a provider's own stream, whatever the route's ingress

    post = put = patch = delete = options = head = get
