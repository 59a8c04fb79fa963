"""Extension endpoints (embeddings, images, audio, files, batches, ...): relay to the route's provider.

Declared in routes.yaml with `handler: forward`; nothing here knows any endpoint
by name. A JSON body may name `provider/model` to choose the provider; else the
route's providers are used in order, the next one only while the request can
still be replayed and nothing has reached the client. With `body: stream`, the
request body is relayed as it arrives instead of being held whole. A forward
route's circuit-breaker target is its provider and endpoint (upstream/breaker.py),
whichever model the body names: the endpoint is configuration, the model the client's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import orjson

from converters.encoding import encode
from converters.upstream_errors import upstream_error
from converters.usage import usage_from_tail
from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import Provider, Route, Table
from handlers.base import GatewayHandler
from handlers.upstream_url import encode_parameter, encode_query, unsafe_path
from stages.access import ModelAccess
from stages.accounting import Accounting
from upstream.attempt import Broken, Kept, Relayed, UpstreamRequest, attempt, walk
from upstream.body_pipe import BodyPipe
from upstream.breaker import target_key
from upstream.failure import REFUSED_KEY, RETRYABLE_STATUS, Failure, answered_with_error, relay_answer
from upstream.headers import CLIENT_PRIVATE, relayable
from upstream.pass_on import PassOn

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\*?\}")
_ENDPOINT_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A JSON object, however much whitespace (or a byte-order mark) comes first.
_JSON_OBJECT = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\{")
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


KEYS = ("endpoint", "prefer", "providers", "body", "retry")
STAGES = (ModelAccess(), Accounting())


def compile_route(check: RouteCheck, *, serves_without_provider: bool = False) -> RouteOptions:
    """A forward route's upstream endpoint, candidate providers and body mode."""
    spec = check.spec
    endpoint = spec.get("endpoint") or check.template.removeprefix("/v1/").lstrip("/")
    missing = set(_ENDPOINT_PARAMETER.findall(endpoint)) - check.params
    if missing:
        check.error(("endpoint",), f"{{{sorted(missing)[0]}}} is not a parameter of the match")
    return {
        "endpoint": endpoint,
        "providers": _candidates(check, serves_without_provider) if endpoint else (),
        "stream_body": spec.get("body") == "stream",
    }


def _candidates(check: RouteCheck, serves_without_provider: bool) -> tuple[Provider, ...]:
    """A forward route's providers: those it names (in its order), else all of its format.

    `prefer` puts one first when it is usable, as the endpoint seed describes.
    """
    spec, providers = check.spec, check.providers
    if "providers" in spec and "prefer" in spec:
        check.error(("prefer",), "use either prefer or providers, not both")
    if "providers" not in spec:
        found = [p for p in providers.values() if p.format == check.ingress]
        preferred = providers.get(spec.get("prefer", ""))
        if preferred is not None:
            found.sort(key=lambda p: p is not preferred)
        if not found and not serves_without_provider:
            check.warn((), f"no configured {check.ingress} provider: this route answers 503")
        return tuple(found)
    chosen: list[Provider] = []
    for j, name in enumerate(spec["providers"]):
        if name in providers:
            chosen.append(providers[name])
        elif name in check.skipped:
            check.warn(("providers", j), f"provider '{name}' skipped (no key); next one used")
        else:
            check.error(("providers", j), f"unknown provider '{name}'")
    if not chosen and not serves_without_provider:
        check.warn(("providers",), "none of these providers is usable: this route answers 503")
    return tuple(chosen)


def _providers_and_endpoint(route: Route, table: Table) -> str:
    names = " | ".join(p.name for p in route.providers) or "(no provider: 503)"
    return f"{names} > {route.endpoint}" + (" (body streamed)" if route.stream_body else "")


class ForwardHandler(GatewayHandler):
    """Relays one request to the first provider of the route that answers."""

    rules = HandlerRules(
        "forward", keys=KEYS, check=compile_route, upstream=_providers_and_endpoint, stages=STAGES,
        redaction="json",
    )

    @classmethod
    def for_route(cls, route: Route) -> type[GatewayHandler]:
        return StreamingForwardHandler if route.stream_body else cls

    async def get(self, **params: str) -> None:
        body = None if self.request.method in _NO_BODY else self.request.body
        await self.forward(params, body)

    post = put = patch = delete = head = options = get

    async def forward(self, params: Mapping[str, str], body: bytes | BodyPipe | None) -> None:
        encoded = self._encoded_parameters(params)
        if encoded is None:
            return
        candidates = self.route.providers
        document: dict[str, Any] | None = None
        if isinstance(body, bytes) and _JSON_OBJECT.match(body):
            chosen = self._provider_from_model(body)
            if chosen is None:
                return
            candidates, body, document = chosen
        if not candidates:
            return self.fail(503, f"no provider is configured for {self.route.match}", "no_provider")
        if self.limited and not await self.admit_limits(document, None):
            return
        try:
            await self._walk(candidates, encoded, body, document)
        finally:
            if self.ticket is not None:
                await self.finish_limits()

    async def _walk(
        self, candidates: tuple[Provider, ...], encoded: Mapping[str, str], body: bytes | BodyPipe | None,
        document: dict[str, Any] | None,
    ) -> None:
        """Try the providers in order until one answers; else answer why none did."""
        model = document.get("model") if document is not None else None  # as the upstream gets it
        upstream_model = model if isinstance(model, str) else self.route.endpoint
        failures = await walk(
            candidates, lambda provider, more: self._try(provider, encoded, body, more), self.gone,
            replayable=isinstance(body, bytes | None), policy=self.route.retry,
            answering=lambda: self.committed, breakers=self.runtime.breakers,
            key=lambda provider: target_key(provider.name, self.route.endpoint),
            skipped=lambda provider: self.note_skip(provider.name),
            admit=None if self.ticket is None
            else lambda provider: self.admit_target(provider.name, upstream_model, provider.name),
        )
        self.note_walk(failures)
        if failures:
            self.answer_error(relay_answer(failures[-1]))

    def _encoded_parameters(self, params: Mapping[str, str]) -> dict[str, str] | None:
        """Path parameters percent-encoded for the upstream path; None after a 400."""
        encoded = {}
        for name, raw in params.items():
            value = encode_parameter(raw, slashes=f"{{{name}*}}" in self.route.template)
            if value is None:
                self.fail(400, f"path parameter '{name}' may not hold '#', '?' or control characters",
                          "bad_path")
                return None
            encoded[name] = value
        return encoded

    def _provider_from_model(
        self, body: bytes
    ) -> tuple[tuple[Provider, ...], bytes, dict[str, Any] | None] | None:
        """`model: provider/model` picks that provider and sends it `model`; None after a 400 or 403.
        Also the body's document, for the rate limits' estimate.

        A key with `allowed_agents` may send only a `model` listed there, spelled as listed
        (a bare upstream model, or provider/model); the upstream then gets the document
        as checked, so that no second `model` key can stand behind the first.
        """
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self.fail(400, f"request body is not valid JSON: {exc.args[0]}")
            return None
        if not isinstance(document, dict):
            return self.route.providers, body, None
        model = document.get("model")
        if isinstance(model, str) and self.refuses_model_name(model):
            return None
        if self.refused_by_stages(document):
            return None
        restricted = self.principal is not None and self.principal.allowed_agents is not None
        rewritten = self.redactions is not None  # redaction changed the document: send it re-encoded
        if isinstance(model, str):
            self.model_label = self.runtime.stats.model_label(model)
        name, slash, upstream_model = model.partition("/") if isinstance(model, str) else ("", "", "")
        provider = self.table.providers.get(name) if slash else None
        candidates: tuple[Provider, ...]
        if provider is not None and provider.format == self.route.ingress and upstream_model:
            candidates, document["model"] = (provider,), upstream_model
        elif (restricted and isinstance(model, str)) or rewritten:
            candidates = self.route.providers
        else:
            return self.route.providers, body, document
        try:
            return candidates, encode(document, "the request body"), document
        except ValueError as exc:
            self.fail(400, str(exc), "invalid_request")
            return None

    async def _try(
        self, provider: Provider, params: Mapping[str, str], body: bytes | BodyPipe | None, more: bool
    ) -> Failure | None:
        """One upstream exchange; a Failure when no answer reached the client.

        With `more` (another provider would follow), a retryable error answer is kept, not
        relayed; a provider refusing our key may quote it, so that answer never is.
        """
        template = (
            provider.format_urls.get(self.route.endpoint) or f"{provider.base_url}/{self.route.endpoint}"
        )
        url = _PARAMETER.sub(lambda m: params.get(m.group(1), ""), template)
        reason = unsafe_path(url.split("://", 1)[1].partition("/")[2])
        if reason is not None:
            self.fail(400, f"refused path: {reason}", "bad_path")
            return None
        if self.request.query:
            url += "?" + encode_query(self.request.query)
        headers = [
            (k, v) for k, v in relayable(self.request.headers, CLIENT_PRIVATE) if k.lower() != "x-request-id"
        ]

        def keep(status: int) -> bool:
            return status in REFUSED_KEY or (more and status in RETRYABLE_STATUS)

        reading = PassOn(provider, keep)
        request = UpstreamRequest(provider, provider.name, url, self.request.method or "GET", body, headers,
                                  self.request_id)
        outcome = await self.through_stages(
            lambda sink: attempt(self.runtime.upstream, request, self.staged(reading), sink)
        )
        if isinstance(outcome, Kept):
            error = upstream_error(outcome.body, provider.scrub)
            exchange = outcome.exchange
            failure = answered_with_error(provider.name, provider.name, exchange.status, error,
                                          exchange.headers.get("Retry-After"))
            self.note_try(provider.name, failure)
            return failure
        if isinstance(outcome, Failure):
            self.note_try(provider.name, outcome)
            return outcome
        if isinstance(outcome, Relayed | Broken):
            self.note_try(provider.name)
        if isinstance(outcome, Relayed):
            self.answered(usage_from_tail(reading.tail) if self.model_label else None)
            self.end_relayed(outcome.tail)
        elif isinstance(outcome, Broken):
            self.end_broken(outcome)
        return None


class StreamingForwardHandler(ForwardHandler):
    """`body: stream`: the upstream request starts as soon as the headers are in."""

    streams_body = True

    pipe: BodyPipe | None = None
    upstream: asyncio.Future[None] | None = None

    async def prepare(self) -> None:  # type: ignore[override]
        super().prepare()
        if self._finished:
            return
        if self.request.method in _NO_BODY:
            return
        length = self.request.headers.get("Content-Length")
        self.pipe = BodyPipe(int(length) if length and length.isdigit() else None)
        self.upstream = asyncio.ensure_future(self.forward(self.path_kwargs, self.pipe))

    def data_received(self, chunk: bytes) -> asyncio.Future[None] | None:  # type: ignore[override]
        return self.pipe.write(chunk) if self.pipe is not None else None

    async def get(self, **params: str) -> None:
        if self.pipe is None or self.upstream is None:
            await self.forward(params, None)
            return
        self.pipe.end()
        await self.upstream

    post = put = patch = delete = head = options = get
