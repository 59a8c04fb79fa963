"""Rate limits and budgets of requests: what a handler asks before and after an upstream call.

    limiter = runtime.limiter
    tokens = limiter.estimate(body)                       # prompt estimate + output reserve
    decision = await limiter.admit_request(principal.name, agent_name, tokens)
    if not decision.allowed:                              # 429, or 503 when the state is unreachable
        answer = decision.answer()
        return self.fail(answer.status, answer.message, answer.code, decision.response_headers(), answer.kind)
    for target in targets:                                # the walk
        step = await limiter.admit_target(decision.ticket, target.provider.name, target.model)
        if not step.allowed: continue                     # over the target's or provider's limit
        ... send ...
    await limiter.finish(decision.ticket, usage)          # always (try/finally); usage None: no answer

Each admit is one atomic step of the backend (one Redis round trip): the request is counted
against all the limits that apply, or none. `finish` corrects the token counts with the real
usage, releases concurrent slots and charges the key's budget, in one more step. A request
under no limit and no budget costs no round trip at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from converters.usage import Usage
from dsl.table import LimitSettings, Rates, StateSettings, Table
from limits import estimate, prices
from limits.backend import Admission, Backend, Charge, Check, Correction, StateError
from limits.headers import duration_text, ratelimit_headers, retry_after_text
from limits.health import StateHealth
from limits.state import open_backend, shown
from ops.metrics import RATELIMIT_DECISIONS, SPEND_USD

WINDOW = 60.0  # rpm and tpm count the last minute
_PREFIX = "llmgw:"
_T = TypeVar("_T")
_CLOSE_AFTER = 5.0  # seconds a replaced backend stays open for the calls in flight on it


# Not frozen (never changed all the same): made per request, and a frozen dataclass's __init__
# sets each field through object.__setattr__, some 4 K instructions more per instance.
@dataclass(slots=True)
class Refusal:
    """Which limit refused: scope key|agent|target|provider, its name, and kind
    rpm|tpm|concurrent|budget|state (the state was unreachable and on_state_error is deny),
    with the limit, what was used and what this request asked (budget: nano-USD)."""

    scope: str
    name: str
    kind: str
    limit: int = 0
    used: int = 0
    requested: int = 0


# Not frozen: made per request, as Refusal above.
@dataclass(slots=True)
class Answer:
    """The error a refused request gets, in OpenAI's terms: `kind` is the error type, which
    handlers/errors.py keeps for OpenAI clients and maps from the status for Anthropic ones."""

    status: int
    message: str
    code: str
    kind: str | None


_KIND_WORDS = {"rpm": "requests per min (RPM)", "tpm": "tokens per min (TPM)",
               "concurrent": "concurrent requests"}


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until `finish`: its token entries to correct, its
    concurrent slots to release, and the key and target to charge."""

    entry: str  # unique per request; each admit adds a suffix
    key: str | None  # None: a route without authentication (no key limits, no spend)
    tokens: int  # reserved on every tpm limit admitted
    windows: list[tuple[str, float]] = field(default_factory=list)  # tpm entries: (storage key, at)
    target_windows: list[tuple[str, float]] = field(default_factory=list)  # the current target's
    leases: list[tuple[str, str]] = field(default_factory=list)  # (storage key, entry): key's, agent's
    target_leases: list[tuple[str, str]] = field(default_factory=list)  # the current target's
    model: str = ""  # the current target's provider/model
    steps: int = 0


# Not frozen: made per request, as Refusal above.
@dataclass(slots=True)
class Decision:
    allowed: bool
    ticket: Ticket
    refused: Refusal | None = None
    retry_after: float = 0.0  # seconds
    headers: Mapping[str, str] = field(default_factory=dict)  # x-ratelimit-* of the key's rpm and tpm

    def answer(self) -> Answer:
        """The error to answer a refused request with: 429 rate_limit_exceeded (type requests or
        tokens, as OpenAI sends them), 429 insufficient_quota for a spent budget, 503 when the
        state is unreachable and on_state_error is deny."""
        refused = self.refused
        assert refused is not None, "only a refused request has an error"
        wait = duration_text(self.retry_after)
        if refused.kind == "state":
            return Answer(503, "Rate limits cannot be checked now (the gateway's state store is "
                          f"unreachable). Please try again in {wait}.", "state_unavailable", None)
        if refused.kind == "budget":
            return Answer(429, f"You exceeded your current quota: the budget of key '{refused.name}' "
                          f"(${refused.limit / prices.NANO:.2f}) is spent until its period ends in {wait}.",
                          "insufficient_quota", "insufficient_quota")
        return Answer(429, f"Rate limit reached for {refused.scope} '{refused.name}' on "
                      f"{_KIND_WORDS[refused.kind]}: Limit {refused.limit}, Used {refused.used}, "
                      f"Requested {refused.requested}. Please try again in {wait}.",
                      "rate_limit_exceeded", "tokens" if refused.kind == "tpm" else "requests")

    def response_headers(self) -> dict[str, str]:
        """The x-ratelimit-* headers, and Retry-After when refused: set them on the answer."""
        if self.allowed:
            return dict(self.headers)
        return {**self.headers, "Retry-After": retry_after_text(self.retry_after)}


# Not frozen: made per request, as Refusal above.
@dataclass(slots=True)
class _Limit:
    scope: str
    name: str
    kind: str
    check: Check


class Limiter:
    """The process's limits: rules from each table (`configure`), counts in its state backend."""

    def __init__(self, state_socket: str | None = None) -> None:
        self.state_socket = state_socket
        self.settings = LimitSettings()
        self.models: Mapping[str, Mapping[str, Any]] = {}
        self.state: StateSettings | None = None
        self.backend: Backend | None = None
        self.health = StateHealth("memory", "allow")
        # Entry names must be unique across instances sharing a Redis (equal names would merge
        # entries): a random part per Limiter, the pid (a Limiter copied by fork) and a count.
        self.instance = os.urandom(6).hex()
        self.ids = itertools.count()
        self.closing: set[asyncio.Task[None]] = set()

    def configure(self, table: Table) -> None:
        """Take `table`'s limits; a changed `state:` opens its backend (counts start afresh)."""
        self.settings = table.limits
        self.models = table.models
        if table.state != self.state or self.backend is None:
            old, self.backend = self.backend, open_backend(table.state, self.state_socket)
            self.state = table.state
            self.health = StateHealth(shown(table.state, self.state_socket), table.state.on_state_error)
            if old is not None:
                self._close_later(old)

    def estimate(self, body: Mapping[str, Any], prompt: int | None = None) -> int:
        """Tokens `body` counts against tpm until its usage is known (limits/estimate.py);
        `prompt`: its prompt's estimate when the caller has made it already."""
        if prompt is None:
            return estimate.request_tokens(body, self.settings.output_reserve)
        return prompt + estimate.output_tokens(body, self.settings.output_reserve)

    async def admit_request(self, key: str | None, agent: str | None, tokens: int) -> Decision:
        """The API key's and the agent's limits and the key's budget, checked and counted at once
        (`key` None: a route without authentication, under no key's limits)."""
        ticket = Ticket(f"{self.instance}.{os.getpid()}.{next(self.ids)}", key, tokens)
        limits = [] if key is None else self._limits("key", key, self.settings.for_key(key), tokens)
        budget = None if key is None else self.settings.budgets.get(key)
        if key is not None and budget is not None:
            label, _ = prices.period(budget.per, datetime.now(UTC))
            check = Check("budget", self._spend_key(key, label), round(budget.usd * prices.NANO))
            limits.append(_Limit("key", key, "budget", check))
        if agent is not None and agent in self.settings.agents:
            limits += self._limits("agent", agent, self.settings.agents[agent], tokens)
        return await self._admit(ticket, limits, ticket.windows, ticket.leases)

    async def admit_target(self, ticket: Ticket, provider: str, model: str) -> Decision:
        """The target's (provider/model) and its provider's limits, checked and counted at once.

        Call it before each try (a retry of the same target included): the previous try is over,
        so the tokens and concurrent slots its target held are given back first (one more step,
        only when it held some), and a retry never waits for its own slot or tokens."""
        target = f"{provider}/{model}"
        if ticket.target_windows or ticket.target_leases:
            assert self.backend is not None
            refunds = [Correction(key, WINDOW, at, -ticket.tokens) for key, at in ticket.target_windows]
            leases, ticket.target_leases, ticket.target_windows = ticket.target_leases, [], []
            release = self.backend.settle(refunds, leases, [], f"{ticket.entry}.r{ticket.steps}")
            await self.guarded("settle", release)
        ticket.model = target
        limits: list[_Limit] = []
        if target in self.settings.targets:
            limits += self._limits("target", target, self.settings.targets[target], ticket.tokens)
        if provider in self.settings.providers:
            limits += self._limits("provider", provider, self.settings.providers[provider], ticket.tokens)
        return await self._admit(ticket, limits, ticket.target_windows, ticket.target_leases)

    async def finish(self, ticket: Ticket, usage: Usage | None) -> None:
        """End the request: correct its reserved tokens, release its concurrent slots and charge
        its key at the answering model's price, in one step.

        `usage`: the answer's (streams included); None when no target answered, which gives
        every reserved token back. An answer that reported no usage keeps its reservation.
        Requests stay counted in rpm."""
        corrections = []
        if usage is None or usage.reported:
            delta = -ticket.tokens if usage is None else usage.input + usage.output - ticket.tokens
            if delta:
                corrections += [Correction(key, WINDOW, at, delta)
                                for key, at in ticket.windows + ticket.target_windows]
        charges = []
        price = prices.price_of(self.models, ticket.model) if usage is not None and ticket.model else None
        if price is not None and usage is not None and ticket.key is not None:
            amount = prices.cost(price, usage)
            SPEND_USD.labels(ticket.key).inc(amount / prices.NANO)
            budget = self.settings.budgets.get(ticket.key)
            if budget is not None and amount:
                label, ends = prices.period(budget.per, datetime.now(UTC))
                charges.append(Charge(self._spend_key(ticket.key, label), amount, ends + 3600))
        leases, ticket.leases, ticket.target_leases = ticket.leases + ticket.target_leases, [], []
        if corrections or leases or charges:
            assert self.backend is not None
            settle = self.backend.settle(corrections, leases, charges, ticket.entry + ".s")
            await self.guarded("settle", settle)

    async def snapshot(self) -> dict[str, Any]:
        """For /statsz: the state in use, whether it answers, and each budgeted key's spend."""
        return {"state": self.health.shown, "state_reachable": self.health.down_since is None,
                "budgets": await self.spend()}

    async def spend(self) -> dict[str, dict[str, Any]]:
        """Each budgeted key's spend in its current period, for /statsz: {key: {usd, budget, per}}
        (usd is None while the state is unreachable)."""
        budgets = self.settings.budgets
        now = datetime.now(UTC)
        keys = [self._spend_key(key, prices.period(budget.per, now)[0]) for key, budget in budgets.items()]
        amounts = await self.guarded("spent", self.backend.spent(keys)) if keys and self.backend else None
        return {
            key: {"usd": None if amounts is None else amounts[i] / prices.NANO, "budget": budget.usd,
                  "per": budget.per}
            for i, (key, budget) in enumerate(budgets.items())
        }

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.close()

    def _limits(self, scope: str, name: str, rates: Rates, tokens: int) -> list[_Limit]:
        base = f"{_PREFIX}{scope}:{name}:"
        limits = []
        if rates.rpm is not None:
            limits.append(_Limit(scope, name, "rpm", Check("count", f"{base}rpm", rates.rpm, WINDOW)))
        if rates.tpm is not None:
            check = Check("window", f"{base}tpm", rates.tpm, WINDOW, tokens)
            limits.append(_Limit(scope, name, "tpm", check))
        if rates.concurrent is not None:
            check = Check("concurrent", base + "concurrent", rates.concurrent, self.settings.concurrent_lease)
            limits.append(_Limit(scope, name, "concurrent", check))
        return limits

    @staticmethod
    def _spend_key(key: str, period: str) -> str:
        return f"{_PREFIX}spend:{key}:{period}"

    async def _admit(
        self, ticket: Ticket, limits: list[_Limit], windows: list[tuple[str, float]],
        leases: list[tuple[str, str]],
    ) -> Decision:
        """Admit `limits` at once; on success note their tpm entries in `windows` and their
        concurrent slots in `leases`."""
        if not limits:
            return Decision(True, ticket)
        assert self.backend is not None
        ticket.steps += 1
        entry = f"{ticket.entry}.{ticket.steps}"
        admission = await self.guarded("admit", self.backend.admit([limit.check for limit in limits], entry))
        scopes = {limit.scope for limit in limits}
        if admission is None:
            allowed = self.health.policy == "allow"
            result = "state_error_allowed" if allowed else "state_error_denied"
            for scope in scopes:
                RATELIMIT_DECISIONS.labels(scope, result).inc()
            first = limits[0]
            if allowed:
                return Decision(True, ticket)
            return Decision(False, ticket, Refusal(first.scope, first.name, "state"), 1.0)
        headers = self._headers(limits, admission)
        if not admission.allowed:
            refused = limits[admission.refused]
            result = "over_budget" if refused.kind == "budget" else "refused"
            RATELIMIT_DECISIONS.labels(refused.scope, result).inc()
            retry_after = admission.retry_after
            if refused.kind == "budget":  # until the period ends
                now = datetime.now(UTC)
                retry_after = prices.period(self.settings.budgets[refused.name].per, now)[1] - now.timestamp()
            check, used = refused.check, admission.outcomes[admission.refused].used
            requested = check.cost if refused.kind in ("rpm", "tpm") else 1
            refusal = Refusal(refused.scope, refused.name, refused.kind, check.limit, used, requested)
            return Decision(False, ticket, refusal, retry_after, headers)
        for scope in scopes:
            RATELIMIT_DECISIONS.labels(scope, "allowed").inc()
        for limit in limits:
            if limit.kind == "tpm":
                windows.append((limit.check.key, admission.at))
            elif limit.kind == "concurrent":
                leases.append((limit.check.key, entry))
        return Decision(True, ticket, headers=headers)

    @staticmethod
    def _headers(limits: list[_Limit], admission: Admission) -> dict[str, str]:
        headers: dict[str, str] = {}
        for limit, outcome in zip(limits, admission.outcomes, strict=True):
            if limit.scope == "key" and limit.kind in ("rpm", "tpm"):
                kind = "requests" if limit.kind == "rpm" else "tokens"
                headers.update(ratelimit_headers(kind, limit.check.limit, outcome.used, outcome.reset))
        return headers

    async def guarded(self, operation: str, call: Awaitable[_T]) -> _T | None:
        """`call`'s result, or None when the state failed, timed out or is resting after a failure."""
        assert self.state is not None
        if self.health.resting():
            _discard(call)
            return None
        try:
            async with asyncio.timeout(self.state.timeout):
                result = await call
        except (StateError, TimeoutError) as exc:
            self.health.failed(operation, exc)
            return None
        self.health.answered()
        return result

    def _close_later(self, backend: Backend) -> None:
        """Close a replaced backend once requests in flight no longer need it."""
        async def close() -> None:
            await asyncio.sleep(_CLOSE_AFTER)
            with contextlib.suppress(Exception):
                await backend.close()
        task = asyncio.get_running_loop().create_task(close())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)


def _discard(call: Awaitable[Any]) -> None:
    """Close a coroutine that will not be awaited (so Python does not warn about it)."""
    close = getattr(call, "close", None)
    if close is not None:
        close()
