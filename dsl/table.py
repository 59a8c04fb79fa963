"""The compiled table: everything a request needs, resolved and immutable.

A reload builds a new Table beside the old one; handlers hold the Table and
Route they started with, so requests in flight finish on their own table.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from access.keys import KeyRing
from converters.registry import ChainPlan
from dsl.errors import Problem
from stages.stage import Hooks, Stage


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """routes.yaml `breakers:` (durations in seconds), or a provider's own `breakers:` over it;
    upstream/breaker.py applies them."""

    enabled: bool = True
    failures: int = 5
    window: float = 60.0
    failure_ratio: float | None = None  # also open at this share of failed requests...
    min_requests: int = 10  # ...once the window holds this many
    cooldown: float = 30.0
    max_cooldown: float = 600.0
    probes: int = 1
    successes: int = 2
    key_refused_cooldown: float = 600.0


@dataclass(frozen=True, slots=True)
class Provider:
    """An upstream API with its credentials and URLs resolved."""

    name: str
    format: str
    base_url: str
    format_urls: Mapping[str, str]
    timeout: float  # the whole transfer, streams included
    connect_timeout: float
    # Headers sent upstream on every request, credentials included: never repr'd or logged.
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    key: str | None = field(default=None, repr=False)
    breakers: BreakerSettings = BreakerSettings()  # the top-level `breakers:` under its own
    # The longest silence of the upstream within a transfer (None: only `timeout` bounds it).
    idle_timeout: float | None = 600.0
    stream_usage: bool = True  # an OpenAI provider is asked for a stream's usage chunk

    def scrub(self, text: str) -> str:
        """`text` (an upstream's error message, say) with this provider's key taken out."""
        return text.replace(self.key, "[redacted]") if self.key and self.key in text else text

    def url_for(self, endpoint: str) -> str:
        """Full URL of `endpoint` (e.g. 'chat/completions'), honouring format_urls."""
        url = self.format_urls.get(endpoint)
        return url if url is not None else f"{self.base_url}/{endpoint}"


@dataclass(frozen=True, slots=True)
class Target:
    """One provider/model an agent may send a request to (its own limits in tokens, when the
    agent gives them, else the `models:` registry's apply: limits/context.py)."""

    provider: Provider
    model: str
    context_window: int | None = None
    max_output: int | None = None
    # provider/model: metric labels, the access log, breakers and strategies ask for it on
    # every request, so it is made once.
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.provider.name}/{self.model}")


# Today's walk-on classification (upstream/failure.py `Failure.retryable`), in `retry.when` words.
DEFAULT_RETRY_ON = frozenset({"transport", "timeout", "408", "429", "5xx", "401", "403"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """routes.yaml `retry:` (durations in seconds): how `walk` (upstream/attempt.py) tries targets."""

    attempts: int = 1  # tries per target
    base: float = 0.1  # back-off before the n-th retry: full jitter up to min(cap, base * 2**(n-1))
    cap: float = 1.0
    when: frozenset[str] = DEFAULT_RETRY_ON  # which failures are tried again (upstream/failure.py)
    deadline: float | None = None  # the whole walk ends by then (the client gets 504)

    def pause(self, retry: int) -> float:
        """Seconds to wait before the `retry`-th retry (1: the first), fully jittered so that
        clients failing together spread out."""
        return random.uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))


@dataclass(frozen=True, slots=True)
class OverflowSettings:
    """An agent's `overflow:`: the context-overflow guard (limits/context.py)."""

    enabled: bool = True
    margin: float = 0.0  # added to the calibrated estimate, as a share of it
    keep_last_turns: int | None = None  # trim: None keeps every turn; else drop the oldest beyond these


@dataclass(frozen=True, slots=True)
class McpServer:
    """routes.yaml `mcp_servers.<name>` with its credentials from the secrets file (toolbox/ connects)."""

    name: str
    url: str
    timeout: float = 30.0  # one tools/call; past it the call is cut and the model told so
    allow: tuple[str, ...] = ()  # shell patterns of the tools offered; empty: every tool
    deny: tuple[str, ...] = ()  # ... minus these
    max_result: int = 20000  # characters of one tool result the model reads; the rest is cut
    refresh: float = 300.0  # seconds between two reads of the tool list
    # Headers sent on every request (the secrets file's token and headers): never repr'd or logged.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        """`text` (an error message, say) with every header value taken out."""
        for _, value in self.headers:
            if value and value in text:
                text = text.replace(value, "[redacted]")
        return text


@dataclass(frozen=True, slots=True)
class McpLoop:
    """An agent's `mcp:`: the servers whose tools it offers and the limits of the tool loop."""

    servers: tuple[str, ...]
    max_iterations: int = 10  # model rounds that may call tools; then one last round without tools
    max_tool_calls: int = 32  # tool calls over the whole request
    deadline: float = 120.0  # seconds for the whole loop
    parallel: int = 4  # tool calls run at once


@dataclass(frozen=True, slots=True)
class Agent:
    """A model name that clients send, standing for its targets and how to order them
    (upstream/strategies.py)."""

    name: str
    strategy: str
    targets: tuple[Target, ...]
    weights: tuple[int, ...]  # one per target: its share for the weighted and sticky strategies
    retry: RetryPolicy = RetryPolicy()
    hedge_after: float | None = None  # seconds without an answer before the next target is tried too
    overflow: OverflowSettings = OverflowSettings()
    mcp: McpLoop | None = None  # the MCP tool loop, when the agent offers MCP tools
    # Some target's context or output limit is known (its own, or the `models:` registry's for its
    # model): False, the overflow guard has nothing to weigh, and is not run (found once, here).
    limits_known: bool = True


@dataclass(frozen=True, slots=True)
class Route:
    """One line of the routes list, compiled."""

    match: str
    methods: frozenset[str] | None  # None: any method
    template: str
    pattern: re.Pattern[str]
    handler: str
    ingress: str
    auth: bool
    admin: bool  # only admin keys may call it
    chains: Mapping[str, ChainPlan]  # by provider format
    line: int
    endpoint: str = ""  # forward: upstream path template under the provider's url
    providers: tuple[Provider, ...] = ()  # forward: candidates, most preferred first
    stream_body: bool = False  # forward: relay the request body as it arrives
    stages: tuple[Stage, ...] = ()  # its handler's steps around the upstream (stages/stage.py)
    retry: RetryPolicy = RetryPolicy()  # forward: over the table's `retry:`
    hooks: Hooks = field(init=False)  # `stages` by the hooks they override, for each request to run

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", Hooks.of(self.stages))

    def accepts(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass(frozen=True, slots=True)
class ServerSettings:
    listen_host: str
    listen_port: int
    max_body: int
    drain_timeout: float
    upstream_connections: int
    max_header_size: int = 64 * 1024
    body_timeout: float = 120.0
    idle_timeout: float = 60.0
    max_connections: int = 10000
    access_log: bool = True
    max_buffered_bodies: int = 256 * 1024 * 1024
    write_buffer: int = 1024 * 1024
    workers: int = 1  # serving processes; above 1, a supervisor forks them (server/supervisor.py)


@dataclass(frozen=True, slots=True)
class Rates:
    """`{rpm, tpm, concurrent}` of one provider, target, agent or API key; None: no such limit."""

    rpm: int | None = None  # requests admitted in any 60 s
    tpm: int | None = None  # tokens (prompt estimate + output reserve, then the real usage) in any 60 s
    concurrent: int | None = None  # requests in flight at once

    def over(self, default: Rates) -> Rates:
        """These rates where set, `default`'s elsewhere (an API key's own over `limits.keys`)."""
        return Rates(
            self.rpm if self.rpm is not None else default.rpm,
            self.tpm if self.tpm is not None else default.tpm,
            self.concurrent if self.concurrent is not None else default.concurrent,
        )


@dataclass(frozen=True, slots=True)
class Budget:
    """An API key's spending cap (secrets file `budget:`), in USD per UTC calendar day or month."""

    usd: float
    per: str  # "day" | "month"


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """routes.yaml `limits:` with the secrets file's per-key `limits:` and `budget:`; limits/ applies them."""

    providers: Mapping[str, Rates] = field(default_factory=dict)
    targets: Mapping[str, Rates] = field(default_factory=dict)  # by "provider/model"
    agents: Mapping[str, Rates] = field(default_factory=dict)
    keys: Rates = Rates()  # every API key's, unless its own `limits:` says otherwise
    own: Mapping[str, Rates] = field(default_factory=dict)  # API keys' own, by key name
    budgets: Mapping[str, Budget] = field(default_factory=dict)  # by key name
    output_reserve: int = 1024  # output tokens reserved when the request sets no max_tokens
    concurrent_lease: float = 900.0  # a `concurrent` slot not released by then frees itself
    # Whether any limit or budget is declared: without one, requests skip the limiter. Every
    # request asks, so it is decided once.
    enabled: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        enabled = bool(self.providers or self.targets or self.agents or self.own or self.budgets
                       or self.keys != Rates())
        object.__setattr__(self, "enabled", enabled)

    def for_key(self, name: str) -> Rates:
        own = self.own.get(name)
        return self.keys if own is None else own.over(self.keys)


@dataclass(frozen=True, slots=True)
class StateSettings:
    """routes.yaml `state:`: where limits and budgets are counted (and open breakers shared),
    and what to do when it fails."""

    url: str = "memory"  # memory, redis://host:port/db or rediss://...
    timeout: float = 0.25  # one state operation; past it on_state_error applies
    on_state_error: str = "allow"  # "allow" | "deny"
    breaker_sync: float = 0.25  # how often open breakers are read from the state; 0: never


@dataclass(frozen=True, slots=True)
class Table:
    """A whole compiled routes.yaml (and its secrets file)."""

    source: str
    server: ServerSettings
    providers: Mapping[str, Provider]
    agents: Mapping[str, Agent]
    routes: tuple[Route, ...]
    keys: KeyRing
    warnings: tuple[Problem, ...]
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # the static registry
    catalog_ttl: float = 300.0
    catalog_timeout: float = 5.0
    profiling_enabled: bool = False
    breakers: BreakerSettings = BreakerSettings()  # the top level's; each provider has its own
    retry: RetryPolicy = RetryPolicy()  # the defaults, for requests that name provider/model
    state: StateSettings = StateSettings()
    limits: LimitSettings = LimitSettings()
    mcp_servers: Mapping[str, McpServer] = field(default_factory=dict)  # in declared order
    # An agent orders its targets by latency (least-latency): only then are chat tries counted in
    # flight and timed for upstream/strategies.py, as that strategy alone reads them.
    latency_ranked: bool = True

    def targets_for(self, model: str) -> tuple[Target, ...] | None:
        """Targets for a client's `model`: an agent, or provider/model. None when neither."""
        agent = self.agents.get(model)
        if agent is not None:
            return agent.targets
        provider_name, slash, upstream_model = model.partition("/")
        provider = self.providers.get(provider_name) if slash else None
        if provider is None or not upstream_model:
            return None
        return (Target(provider, upstream_model),)
