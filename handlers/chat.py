"""Chat: the client's model names an agent or provider/model; walk targets until one answers.

Fallback happens only before the first byte reaches the client. Whether the
answer streams follows the upstream Content-Type, not the request's flag. An agent
with MCP servers runs its tool loop (handlers/tool_loop.py) around whole walks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import orjson

from converters.base import Chain, Context
from converters.encoding import encode
from converters.registry import ChainPlan, UnsupportedConversion, plan
from converters.stream_start import StreamStart
from converters.translation import Translation
from converters.usage import Usage, usage_from_body, with_stream_usage
from dsl.handler_rules import HandlerRules, RouteCheck, RouteOptions
from dsl.table import Agent, Provider, Route, Table, Target
from handlers.base import GatewayHandler, header_value
from handlers.tool_loop import ToolLoop
from limits import context
from limits.estimate import prompt_tokens
from ops import metrics
from stages.access import ModelAccess
from stages.accounting import Accounting
from upstream.attempt import Broken, Head, Kept, Outcome, Relayed, Sink, UpstreamRequest, attempt, walk
from upstream.breaker import key_of
from upstream.exchange import Exchange
from upstream.failure import CONTEXT_OVERFLOW, Failure, agent_answer, answered_with_error
from upstream.hedge import Race
from upstream.strategies import SESSION_HEADER

_JSON_TYPED = (("Content-Type", "application/json"),)  # what every chat request sends upstream
# More entries than any real conversation has; past it a request is refused before any
# walk over its messages (a million of them would hold the event loop for seconds).
MAX_MESSAGES = 100_000


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
    agents = [
        f"{a.name} > {'|'.join(t.label for t in a.targets) or '(none)'}"
        + ("" if a.strategy == "fallback" else f" ({a.strategy})")
        for a in table.agents.values()
    ]
    return ", ".join(agents + [f"{p}/*" for p in table.providers])


class ChatHandler(GatewayHandler):
    """POST /v1/chat/completions (and, with conversion, /v1/messages)."""

    rules = HandlerRules(
        "chat",
        keys=("converters",),
        refusal="the {handler} handler takes no converters",
        check=_chains,
        upstream=_agents_and_providers,
        stages=(ModelAccess(), Accounting()),
        redaction="chat",
    )
    requested_model = ""
    agent: Agent | None = None  # when the client's model names one
    prompt_estimate = 0  # tokens, when the agent's overflow guard estimated the prompt
    fits: Mapping[str, context.Fit] = MappingProxyType({})  # by target label, when the guard runs
    tool_loop: ToolLoop | None = None  # an agent's MCP tool loop, which reads every round's answer

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
        if self.refused_by_stages(document):
            return None
        self.requested_model = model
        label = model if model in self.table.agents else targets[0].label
        self.model_label = self.runtime.stats.model_label(label)
        if not targets:
            return self.fail(503, f"agent '{model}' has no usable target", "no_target")
        self.agent = agent = self.table.agents.get(model)
        if agent is not None:
            # Only the sticky strategy reads the session (a header lookup is a call and a join).
            session = self.request.headers.get(SESSION_HEADER) if agent.strategy == "sticky" else None
            targets = self.runtime.strategies.order(agent, document, session)
            if agent.limits_known and agent.overflow.enabled:  # else the guard has nothing to weigh
                document = self._fit_context(agent, targets, document)
                if self.fits and not any(fit.fits for fit in self.fits.values()):
                    return self._refuse_overflow(agent)
        limited = self.runtime.limiter.settings.enabled  # `limited`, without its call
        if limited and not await self.admit_limits(
                document, None if agent is None else agent.name, self.prompt_estimate):
            return None
        try:
            if agent is not None and agent.mcp is not None:
                self.tool_loop = ToolLoop(self, agent.name, agent.mcp)
                await self.tool_loop.run(targets, document)
            else:
                failures = await self.walk_targets(targets, document)
                if failures:
                    self.answer_error(agent_answer(failures))
        finally:
            if self.ticket is not None:
                await self.finish_limits()

    def refit(self, targets: tuple[Target, ...], document: dict) -> dict | None:
        """The overflow guard again, for a later round of the tool loop (its prompt has grown by
        tool turns): the document to send, or None when no target can take it any more."""
        if self.agent is None:
            return document
        document = self._fit_context(self.agent, targets, document)
        if self.fits and not any(fit.fits for fit in self.fits.values()):
            metrics.CONTEXT_REJECTIONS.labels(agent=self.agent.name).inc()
            return None
        return document

    def overflow_message(self) -> str:
        """Why no target takes the prompt, with the numbers (after `refit` said none does)."""
        assert self.agent is not None
        return context.refusal_message(list(self.fits.values()), self.agent.name)

    def _refuse_overflow(self, agent: Agent) -> None:
        """No target of the agent can take the prompt: 400 with the numbers, before any upstream."""
        for fit in self.fits.values():
            metrics.CONTEXT_SKIPS.labels(target=fit.target.label).inc()
        metrics.CONTEXT_REJECTIONS.labels(agent=agent.name).inc()
        message = context.refusal_message(list(self.fits.values()), agent.name)
        self.fail(400, message, "context_length_exceeded", kind="invalid_request_error", param="messages")

    async def walk_targets(
        self, targets: tuple[Target, ...], document: dict, client: Sink | None = None
    ) -> list[Failure] | None:
        """Try the targets in the order given until one answers `client` (default: the client
        itself; a tool loop's round captures the answer); else the failures, the last one final."""
        sink: Sink = self if client is None else client
        policy = self.table.retry if self.agent is None else self.agent.retry
        hedge_after = None if self.agent is None else self.agent.hedge_after
        self.race = None if hedge_after is None else Race(sink)
        tried_before = len(self.tried or ())
        failures = await walk(
            targets, lambda target, _: self._attempt(target, document, sink), self.gone,
            policy=policy, answering=lambda: sink.committed,
            breakers=self.runtime.breakers, key=key_of,
            skipped=self._skipped, hedge_after=hedge_after,
            admit=self._admit if self.ticket is not None or self.fits else None,
        )
        if failures:  # (note_walk's own first test, without its call)
            self.note_walk(failures)
        if self.agent is not None:  # (_count_fallback's own first test, without its call)
            self._count_fallback(failures, len(self.tried or ()) - tried_before)
        return failures

    def _skipped(self, target: Target) -> None:
        """A target the walk skipped (its breaker is open): a method, not a lambda made per walk."""
        self.note_skip(target.label)

    def _fit_context(self, agent: Agent, targets: tuple[Target, ...], document: dict) -> dict:
        """The agent's overflow guard: each target's fit for this prompt (targets that cannot
        take it are skipped by `_admit`), after trimming the prompt when it fits none and the
        agent trims. Returns the document to send."""
        settings = agent.overflow
        if not (settings.enabled and agent.limits_known):
            return document
        windows, known = [], False  # one loop, not a list and all() over a generator: most agents know none
        for target in targets:
            window = context.window_of(target, self.table.models)
            windows.append((target, window))
            known = known or window.context is not None or window.output is not None
        if not known:
            return document
        calibration = self.runtime.calibration
        output = context.requested_output(document)

        def measure(prompt: dict) -> dict[str, context.Fit]:
            self.prompt_estimate = estimate = prompt_tokens(prompt)
            return {t.label: context.fit(t, w, estimate, output, settings, calibration) for t, w in windows}

        fits = measure(document)
        widest = max(fits.values(), key=lambda f: f.window.context or 0)
        if settings.keep_last_turns is not None and not any(f.fits for f in fits.values()) \
                and widest.window.context is not None:
            scale = calibration.ratio(widest.target.model) * (1 + settings.margin)
            budget = int((widest.window.context - output) / scale)
            document, dropped = context.trimmed(document, settings.keep_last_turns, budget)
            if dropped:
                metrics.CONTEXT_TRIMMED.labels(agent=agent.name).inc(dropped)
                self.set_header("x-gateway-trimmed-messages", str(dropped))
                fits = measure(document)
        self.fits = fits
        return document

    def _count_fallback(self, failures: list[Failure] | None, tried: int) -> None:
        """An agent's walk (of `tried` tries) that went past its first target, or where none
        answered, by outcome."""
        if self.agent is None or self.client_gone or not tried:
            return
        if failures or tried > 1:
            outcome = "all_failed" if failures else "answered_after_fallback"
            metrics.FALLBACKS.labels(agent=self.agent.name, outcome=outcome).inc()

    async def _admit(self, target: Target) -> Failure | None:
        """Whether the prompt fits the target, then the target's own rate limits: a target that
        fails either is skipped (and logged as such)."""
        fit = self.fits.get(target.label)
        if fit is not None and not fit.fits:
            metrics.CONTEXT_SKIPS.labels(target=target.label).inc()
            message = f"the prompt (about {fit.tokens} tokens) and {fit.output} output tokens do not fit"
            refused = Failure(target.provider.name, target.label, 0, CONTEXT_OVERFLOW, message)
            self.note_try(target.label, refused)
            return refused
        if self.ticket is None:
            return None
        return await self.admit_target(target.provider.name, target.model, target.label)

    async def _attempt(self, target: Target, document: dict, client: Sink) -> Failure | None:
        """Try one target, answering `client` (in a hedged walk, through the try's stand-in). None
        when the client got its answer (or left, or another try won it); else why not, noted for
        the access log (an answer notes itself). One coroutine per try: each one more is a frame
        to make, and to pass through at each of the try's wake-ups."""
        sink: Sink = client if self.race is None else self.race.enter()
        provider = target.provider
        chain_plan = self.route.chains.get(provider.format)
        if chain_plan is None:
            message = f"{provider.format} providers cannot serve {self.route.ingress} clients"
            failure = Failure(provider.name, target.label, 0, "unsupported_format", message)
            self.note_try(target.label, failure)
            return failure
        translation = chain_plan.translation
        conversion = Context(document, self.requested_model)  # not `context`: limits.context is used below
        try:
            upstream_document = translation.request(document) if translation.request else document
            if translation.asks_stream_usage and provider.stream_usage:
                upstream_document = with_stream_usage(upstream_document)
            if upstream_document is document:  # the client's own, which later tries send too
                upstream_document = {**document, "model": target.model}
            else:  # made for this try (converted, or asking for usage): the model is set in it
                upstream_document["model"] = target.model
            upstream_body = encode(upstream_document, "the request")
        except ValueError as exc:
            failure = Failure(provider.name, target.label, 400, "invalid_request", str(exc))
            self.note_try(target.label, failure)
            return failure
        loop = self.tool_loop
        # `relaying` by position: a keyword argument costs the instance some 1 K instructions more
        reading = _ChatReading(provider, chain_plan, conversion, loop is None or loop.streamed)
        # The content type alone, unless the format pair passes client headers on (most pass none).
        passed = translation.client_headers
        headers = self._upstream_headers(passed) if passed else _JSON_TYPED
        request = UpstreamRequest(provider, target.label, provider.url_for(translation.endpoint), "POST",
                                  upstream_body, headers, self.request_id)
        # Tries counted in flight and timed only for a least-latency agent to read (Table.latency_ranked).
        strategies = self.runtime.strategies if self.table.latency_ranked else None
        if strategies is not None:
            started = self.request.request_time()
            strategies.start_try(target)
        try:
            # The attempt, inside the stages' `around` hooks (a stage may run it more than once: each
            # run staged anew), then the client's answer ended with it.
            outcome = await self.through_stages(
                lambda staged: attempt(self.runtime.upstream, request, self.staged(reading), staged), sink
            )
            failure = self._outcome(target, outcome, reading, translation, conversion, sink)
        finally:
            if strategies is not None:
                strategies.end_try(target)
        if strategies is not None and self.agent is not None and (failure is None or failure.retryable):
            if self.tool_loop is not None:  # a round is read whole: its time, when it answered
                first_byte = None if failure is not None else self.request.request_time() - started
            else:
                first_byte = None if self.ttfb is None else self.ttfb - started
            if failure is not None or first_byte is not None:  # else the client left first
                strategies.observe(target, first_byte)
        if failure is not None:
            if failure.kind == CONTEXT_OVERFLOW and self.prompt_estimate:
                window = context.window_of(target, self.table.models).context
                self.runtime.calibration.overflowed(target.model, self.prompt_estimate, window)
            self.note_try(target.label, failure)
        return failure

    def _outcome(
        self, target: Target, outcome: Outcome, reading: _ChatReading, translation: Translation,
        context: Context, sink: Sink,
    ) -> Failure | None:
        """End the client's answer with the attempt's outcome; None when it did, else why not."""
        if outcome is None or isinstance(outcome, Failure):  # not `Failure | None`: a union made per call
            return outcome
        if isinstance(outcome, Relayed):
            self._answered(target, _chain_usage(reading.chain))
            sink.end(outcome.tail)
        elif isinstance(outcome, Broken):
            self._answered(target, _chain_usage(reading.chain))
            self.end_broken(outcome)
        elif isinstance(outcome, Kept):
            return self._end_kept(target, outcome, translation, context, sink)
        return None

    def _answered(self, target: Target, usage: Usage | None) -> None:
        """The answer is complete: noted for the access log, the stages' `done`, and an agent
        target's prompt-cache tokens."""
        self.note_try(target.label)
        if self.prompt_estimate and usage is not None and usage.reported:
            self.runtime.calibration.observe(target.model, self.prompt_estimate, usage.input)
        if self.agent is not None and usage is not None and usage.reported:
            cached, written, uncached = self.runtime.metrics.prompt_cache(self.agent.name, target.label)
            # inc(0) would change nothing, at the cost of a call.
            if usage.cached:
                cached.inc(usage.cached)
            if usage.cache_write:
                written.inc(usage.cache_write)
            if usage.input > usage.cached + usage.cache_write:
                uncached.inc(usage.input - usage.cached - usage.cache_write)
        if self.tool_loop is None:
            self.answered(usage)
        else:
            self.tool_loop.add_usage(usage)  # the loop answers once, with every round's usage

    def _upstream_headers(self, names: Sequence[str]) -> Sequence[tuple[str, str]]:
        """The content type, and the client's headers `names` that the format pair passes on (the
        request id goes on its own)."""
        given = self.request.headers
        return [*_JSON_TYPED, *((name, value) for name in names if (value := given.get(name)))]

    def _end_kept(
        self, target: Target, kept: Kept, translation: Translation, context: Context, sink: Sink
    ) -> Failure | None:
        """A buffered answer: converted and ended at `sink` when it is a good one, else why not."""
        provider, status, body = target.provider.name, kept.exchange.status, kept.body
        if status == 0:
            return Failure(provider, target.label, 0, "transfer", "upstream gave no HTTP status")
        if not 200 <= status < 300:
            error = translation.error(body, target.provider.scrub)
            retry_after = kept.exchange.headers.get("Retry-After")
            return answered_with_error(provider, target.label, status, error, retry_after)
        if not body or body.isspace():  # what `not body.strip()` says, without a copy of the body
            return Failure(provider, target.label, status, "empty", "upstream answered 200 with no body")
        if translation.response is None:
            usage = usage_from_body(body, translation.usage)  # relayed as is: parsed for usage only
        else:
            try:
                document = orjson.loads(body)  # once, for both the usage and the conversion
                usage = translation.usage(document)
                body = translation.response(document, context, usage)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
                return Failure(provider, target.label, 502, "bad_upstream_body", f"unusable answer: {exc}")
        if not sink.claim():
            return None  # a hedged try answered first
        body = self.staged_body(body)  # after the claim: a losing try's redactions are not counted
        content_type = kept.exchange.headers.get("Content-Type", "application/json")
        if sink is self:  # the client: what begin() would do with the Head, without making one
            self.set_status(status)
            self._headers._as_list["Content-Type"] = [header_value(content_type)]  # set_header's one step
        else:
            sink.begin(Head(status, (("Content-Type", content_type),)))
        self._answered(target, usage)
        sink.end(body)
        return None


class _ChatReading:
    """Relays a 2xx stream through the route's converter chain (a fresh one per answer, as
    a stage may run the upstream again), its start held until the first content event
    (converters/stream_start.py); keeps every other answer (and, not `relaying`, every answer:
    a tool loop's rounds are read whole)."""

    __slots__ = ("provider", "plan", "context", "chain", "start", "relaying")

    def __init__(self, provider: Provider, plan: ChainPlan, context: Context, relaying: bool = True) -> None:
        self.provider = provider
        self.plan = plan
        self.context = context
        self.chain: Chain | None = None  # a relayed stream's, from `relay` on (the methods after it use it)
        self.start: StreamStart | None = None
        self.relaying = relaying

    def relay(self, exchange: Exchange) -> bool:
        if not (self.relaying and exchange.streaming and 200 <= exchange.status < 300):
            return False
        self.chain = self.plan.build(self.context)
        self.start = StreamStart(self.provider.format, exchange.status, self.provider.scrub)
        return True

    def head(self, exchange: Exchange) -> Head:
        content_type = exchange.headers.get("Content-Type")  # there: the answer streams (`relay`)
        return Head(exchange.status, (("Content-Type", content_type), ("Cache-Control", "no-cache")))

    def feed(self, data: bytes) -> bytes:
        start = self.start
        if start is not None:
            released = start.feed(data)
            if released is None:
                return b""
            self.start, data = None, released
        return self.chain.feed(data)

    def settled_feed(self) -> Callable[[bytes], bytes]:
        """The chain's own feed once the stream's start is released (its first content is out)."""
        return self.chain.settled_feed() if self.start is None else self.feed

    def close(self) -> bytes:
        if self.start is not None:
            self.start.end()
        return self.chain.close()

    def cut(self) -> bytes:
        chain = self.chain  # None: nothing was relayed (a kept answer)
        return chain.cut() if chain is not None and self.start is None else b""


# The fields every provider needs typed right, by the exact types orjson reads them as: an
# integer field refuses a bool; a number field takes one, as isinstance(value, (int, float)) did.
_TYPED_FIELDS: tuple[tuple[str, frozenset[type], str], ...] = (
    ("stream", frozenset({bool}), "a boolean"),
    ("max_tokens", frozenset({int}), "an integer"),
    ("max_completion_tokens", frozenset({int}), "an integer"),
    ("temperature", frozenset({int, float, bool}), "a number"),
    ("top_p", frozenset({int, float, bool}), "a number"),
    ("n", frozenset({int}), "an integer"),
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
    for message in messages:  # a loop, not all() over a generator: two calls fewer for a short list
        if not isinstance(message, dict):
            return "every entry of 'messages' must be an object"
    for name, kinds, wording in _TYPED_FIELDS:
        value = document.get(name)
        if value is not None and type(value) not in kinds:
            return f"'{name}' must be {wording}"
    return None


def _chain_usage(chain: Chain | None) -> Usage | None:
    if chain is None:
        return None
    for converter in chain.converters:
        usage = getattr(converter, "usage", None)
        if isinstance(usage, Usage):
            return usage
    return None
