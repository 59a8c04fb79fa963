"""Chat: the client's model names an agent or provider/model; walk targets until one answers.

Fallback happens only before the first byte reaches the client. Whether the
answer streams follows the upstream Content-Type, not the request's flag.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from types import MappingProxyType

import orjson
from tornado.httpclient import HTTPResponse

from converters.base import Chain, Context
from converters.encoding import encode
from converters.registry import ChainPlan, UnsupportedConversion, plan
from converters.sse import EventTooLarge
from converters.translation import Translation
from converters.upstream_errors import UpstreamError
from converters.usage import Usage
from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import Route, Table, Target
from handlers.base import GatewayHandler
from handlers.errors import stream_error_event
from handlers.relay import RETRYABLE_STATUS, Exchange
from ops import metrics
from upstream.client import error_kind

log = logging.getLogger("gateway.chat")

_MAX_ERROR_BODY = 64 * 1024
# More entries than any real conversation has; past it a request is refused before any
# walk over its messages (a million of them would hold the event loop for seconds).
MAX_MESSAGES = 100_000


@dataclass(slots=True)
class Failure:
    """Why one target did not answer, kept to explain the final error if all fail."""

    target: Target
    status: int  # upstream HTTP status, or 0 for a transport failure
    kind: str
    message: str
    retry_after: str | None = None
    upstream: UpstreamError | None = None  # the provider's own error, when it answered with one

    @property
    def retryable(self) -> bool:
        """Transport failures, empty answers, 429/5xx and a provider refusing our key walk on;
        other 4xx are about the request itself, so they are final."""
        return not 400 <= self.status < 500 or self.status in RETRYABLE_STATUS or self.status in (401, 403)


def _chains(check: RouteCheck) -> RouteOptions:
    """A chat route's converter chain for each provider format in use."""
    chains: dict[str, ChainPlan] = {}
    for fmt in sorted({p.format for p in check.providers.values()}):
        try:
            chains[fmt] = plan(check.ingress, fmt, tuple(check.spec.get("converters", ())))
        except UnsupportedConversion as exc:
            check.warn(("ingress",), f"{exc}: {fmt} providers are skipped on this route")
        except ValueError as exc:
            check.error(("converters",), str(exc))
    return {"chains": MappingProxyType(chains)}


def _agents_and_providers(route: Route, table: Table) -> str:
    agents = [f"{a.name} > {'|'.join(t.label for t in a.targets) or '(none)'}" for a in table.agents.values()]
    return ", ".join(agents + [f"{p}/*" for p in table.providers])


class ChatHandler(GatewayHandler):
    """POST /v1/chat/completions (and, with conversion, /v1/messages)."""

    rules = HandlerRules(
        "chat",
        keys=("converters",),
        refusal="the {handler} handler takes no converters",
        check=_chains,
        upstream=_agents_and_providers,
    )
    requested_model = ""

    async def post(self) -> None:
        try:
            document = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as exc:
            return self.fail(400, f"request body is not valid JSON: {exc.args[0]}")
        if not isinstance(document, dict):
            return self.fail(400, "request body must be a JSON object")
        model = document.get("model")
        if not isinstance(model, str) or not model:
            return self.fail(400, "'model' is required and must be a string", "missing_model")
        if self.refuses_model_name(model):
            return None
        problem = shape_problem(document)
        if problem is not None:
            return self.fail(400, problem, "invalid_request")
        targets = self.table.targets_for(model)
        if targets is None:
            return self.fail(
                404, f"model '{model}' is not an agent or provider/model here", "model_not_found"
            )
        if self.principal is not None and not self.principal.may_use(model):
            return self.deny(403, "agent_not_allowed", f"this key may not use model '{model}'")
        self.requested_model = model
        label = model if model in self.table.agents else targets[0].label
        self.model_label = self.runtime.stats.model_label(label)
        if not targets:
            return self.fail(503, f"agent '{model}' has no usable target", "no_target")
        failures: list[Failure] = []
        for attempt, target in enumerate(targets):
            if attempt:
                await asyncio.sleep(random.uniform(0.5, 1.0) * min(0.05 * 2**attempt, 1.0))
            if self.client_gone:
                return
            failure = await self._attempt(target, document)
            if failure is None:
                return
            failures.append(failure)
            metrics.UPSTREAM_ERRORS.labels(provider=target.provider.name, kind=failure.kind).inc()
            if not failure.retryable:
                break
        self._fail_all(failures)

    async def _attempt(self, target: Target, document: dict) -> Failure | None:
        """Try one target. None when the client got its answer (or left); else why not."""
        provider = target.provider
        chain_plan = self.route.chains.get(provider.format)
        if chain_plan is None:
            return Failure(
                target,
                0,
                "unsupported_format",
                f"{provider.format} providers cannot serve {self.route.ingress} clients",
            )
        translation = chain_plan.translation
        context = Context(document, self.requested_model)
        try:
            upstream_document = translation.request(document) if translation.request else document
            upstream_body = encode({**upstream_document, "model": target.model}, "the request")
        except ValueError as exc:
            return Failure(target, 400, "invalid_request", str(exc))
        chain = chain_plan.build(context)
        buffered: list[bytes] = []
        size = 0

        def on_headers(exchange: Exchange) -> None:
            if exchange.streaming and 200 <= exchange.status < 300:
                self.set_status(exchange.status)
                self.set_header("Content-Type", exchange.headers["Content-Type"])
                self.set_header("Cache-Control", "no-cache")

        def on_chunk(data: bytes) -> None:
            nonlocal size
            if exchange.streaming and 200 <= exchange.status < 300:
                try:
                    out = chain.feed(data)
                except EventTooLarge as exc:
                    return self.end_stream(self.route.ingress, target.label, "event_too_large", str(exc))
                if out:
                    self.send(out)
            elif size < _MAX_ERROR_BODY or 200 <= exchange.status < 300:
                buffered.append(data)
                size += len(data)

        exchange = Exchange(self.runtime.upstream, on_headers, on_chunk)
        self.exchange = exchange
        started = time.monotonic()
        response = await exchange.run(
            provider,
            provider.url_for(translation.endpoint),
            "POST",
            upstream_body,
            self._upstream_headers(translation),
        )
        metrics.UPSTREAM_SECONDS.labels(provider=provider.name).observe(time.monotonic() - started)
        if self.client_gone or self._finished:
            return None
        if exchange.streaming and 200 <= exchange.status < 300:
            return self._end_stream(target, chain, response)
        return self._end_buffered(target, exchange, response, b"".join(buffered), translation, context)

    def _upstream_headers(self, translation: Translation) -> list[tuple[str, str]]:
        """Content type and request id, and the client's headers that the format pair passes on."""
        headers = [("Content-Type", "application/json"), ("x-request-id", self.request_id)]
        names = translation.client_headers
        return headers + [(name, value) for name in names if (value := self.request.headers.get(name))]

    def _end_stream(self, target: Target, chain: Chain, response: HTTPResponse) -> Failure | None:
        committed = self.ttfb is not None
        if response.error is not None and response.code == 599:
            if not committed:
                return Failure(target, 0, error_kind(response), str(response.error))
            metrics.UPSTREAM_ERRORS.labels(provider=target.provider.name, kind=error_kind(response)).inc()
            log.warning("upstream %s failed mid-stream: %s", target.label, response.error)
            self.write(
                stream_error_event(self.route.ingress, 502, f"upstream {target.label} failed mid-stream")
            )
            self._record(chain)
            self.finish()
            return None
        tail = chain.close()
        if not committed and not tail:
            return Failure(target, response.code, "empty", "upstream sent an empty stream")
        if tail:
            self.mark_first_byte()
            self.write(tail)
        self._record(chain)
        self.finish()
        return None

    def _end_buffered(
        self,
        target: Target,
        exchange: Exchange,
        response: HTTPResponse,
        body: bytes,
        translation: Translation,
        context: Context,
    ) -> Failure | None:
        if response.code == 599 or exchange.status == 0:
            return Failure(target, 0, error_kind(response), str(response.error))
        status = exchange.status
        if 200 <= status < 300:
            if not body.strip():
                return Failure(target, status, "empty", "upstream answered 200 with no body")
            usage = translation.usage(body)
            if translation.response is not None:
                try:
                    body = encode(translation.response(orjson.loads(body), context), "the answer")
                except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
                    return Failure(target, 502, "bad_upstream_body", f"unusable answer: {exc}")
            self.set_status(status)
            self.set_header("Content-Type", exchange.headers.get("Content-Type", "application/json"))
            self.mark_first_byte()
            self.record_usage(usage)
            self.finish(body)
            return None
        error = translation.error(body, target.provider.scrub)
        message = error.message or f"upstream answered HTTP {status}"
        retry_after = exchange.headers.get("Retry-After")
        return Failure(target, status, error_kind(response), message, retry_after, error)

    def _fail_all(self, failures: list[Failure]) -> None:
        last = failures[-1]
        where = f"{last.target.label}: {last.message}"
        if len(failures) > 1:
            where = f"all {len(failures)} targets failed; last {where}"
        upstream = last.upstream
        if last.status in (401, 403):
            # The provider's message may quote (part of) the gateway's key: not repeated.
            status, headers = 502, None
            where = f"{last.target.provider.name} rejected the gateway's credentials (HTTP {last.status})"
        elif 400 <= last.status < 500 and upstream is not None:
            # The provider's answer to the request itself, as it gave it: clients branch on
            # its type, code and param (e.g. context_length_exceeded).
            retry = {"Retry-After": last.retry_after} if last.status == 429 and last.retry_after else None
            return self.fail(last.status, upstream.message or where, upstream.code, retry,
                             upstream.type, upstream.param)
        elif 400 <= last.status < 500:
            status, headers = last.status, None
        elif last.kind == "timeout":
            status, headers = 504, None
        else:
            status, headers = (503 if last.status in (503, 529) else 502), None
        self.fail(status, where, last.kind, headers)

    def _record(self, chain: Chain) -> None:
        self.record_usage(_chain_usage(chain))


_TYPED_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("stream", bool, "a boolean"),
    ("max_tokens", int, "an integer"),
    ("max_completion_tokens", int, "an integer"),
    ("temperature", (int, float), "a number"),
    ("top_p", (int, float), "a number"),
    ("n", int, "an integer"),
)


def shape_problem(document: dict) -> str | None:
    """What makes a chat request malformed in either format, checked before any upstream sees it.

    Only the fields every provider needs are checked; the rest is the provider's to judge.
    """
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    if len(messages) > MAX_MESSAGES:
        return f"'messages' holds {len(messages)} entries; at most {MAX_MESSAGES} are accepted"
    if not all(isinstance(m, dict) for m in messages):
        return "every entry of 'messages' must be an object"
    for name, kind, wording in _TYPED_FIELDS:
        value = document.get(name)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            return f"'{name}' must be {wording}"
    return None


def _chain_usage(chain: Chain) -> Usage | None:
    for converter in chain.converters:
        usage = getattr(converter, "usage", None)
        if isinstance(usage, Usage):
            return usage
    return None
