"""Prometheus metrics. Labels are bounded by the configuration: route, model name, provider.

Declared here at module level, as Prometheus intends, rather than held by the Runtime:
they are declarations whose values are the process's by design (one scrape per
process; prometheus_client's multiprocess mode for pre-fork workers works on
module-level metrics), and handing them around would only add parameters.

With `server.workers` above 1, the supervisor starts with $PROMETHEUS_MULTIPROC_DIR set
(server/supervisor.py), so prometheus_client keeps every value in a file per process
from its import on, and `exposition` merges the files of every worker, living or dead:
counters and histograms add up, and each gauge says how its workers' values combine
(`multiprocess_mode`, which a single process ignores).

The metrics that every request updates are, in a single process, counters and histograms
of our own without locks (ops/local_metrics.py), scraped as the same samples. With workers,
requests update plain numbers too, which PUBLISHER writes to the process's file once per
event-loop pass (ops/published_metrics.py); it is declared here with the metrics it writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from ops.local_metrics import LocalCounter, LocalHistogram
from ops.published_metrics import GaugeChild, PublishedCounter, PublishedHistogram, Publisher

# Read once, as prometheus_client itself reads it when imported: None in a single process.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")

REGISTRY = CollectorRegistry(auto_describe=True)
PUBLISHER = Publisher()  # with workers: the hot metrics' changes not yet in this process's file


def exposition() -> bytes:
    """The /metrics page: this process's registry, or every worker's files merged (this one's
    with its latest changes: a scrape counts itself in flight)."""
    if MULTIPROCESS_DIR is None:
        return generate_latest(REGISTRY)
    PUBLISHER.publish()
    registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client requires
    MultiProcessCollector(registry, MULTIPROCESS_DIR)
    return generate_latest(registry)


def forget_process(pid: int) -> None:
    """A worker died: its live gauges (in flight, circuit states) stop counting; its
    counters and histograms stay, so the instance's totals never go down."""
    if MULTIPROCESS_DIR is not None:
        mark_process_dead(pid, MULTIPROCESS_DIR)


def follow_in_flight(read: Callable[[], float]) -> bool:
    """In one process, the in-flight gauge reads `read()` when scraped, so that a request does
    not update it twice (True). With workers, each worker's file must follow its requests: the
    caller then counts them on the gauge itself (False)."""
    if not isinstance(IN_FLIGHT, Gauge):
        return False
    IN_FLIGHT.set_function(read)
    return True


class Children(dict[Any, Any]):
    """One metric's children by their label values (in the metric's label order), found in one
    dict lookup: prometheus_client's `labels()` checks, converts and sorts on every call, which
    is most of what a request's metrics cost, several times per request.

    `children[route, status, model]` (a one-label metric's: `children[route]`) is a plain dict
    subscript, a fraction of a Python call's cost.
    Remembers at most `limit` children; past that (never, with the bounded labels the
    gateway uses) `labels()` answers as before, so the cache never outgrows the metric.
    """

    __slots__ = ("metric", "limit")

    def __init__(self, metric: Any, limit: int = 4096) -> None:
        super().__init__()
        self.metric = metric
        self.limit = limit

    def __missing__(self, key: Any) -> Any:
        values = key if type(key) is tuple else (key,)
        child = self.metric.labels(*values)  # prometheus_client str()s each value itself
        if len(self) < self.limit:
            self[key] = child
        return child


def _hot_counter(name: str, documentation: str, labelnames: list[str]) -> LocalCounter | PublishedCounter:
    """A counter that requests update: our own, without locks (ops/local_metrics.py), in one
    process; with workers, prometheus_client's, which PUBLISHER writes to once per loop pass."""
    if MULTIPROCESS_DIR is None:
        return LocalCounter(name, documentation, labelnames, REGISTRY)
    return PublishedCounter(Counter(name, documentation, labelnames, registry=REGISTRY), PUBLISHER)


def _hot_histogram(name: str, documentation: str,
                   labelnames: list[str]) -> LocalHistogram | PublishedHistogram:
    """A latency histogram that requests update, chosen as `_hot_counter` chooses."""
    if MULTIPROCESS_DIR is None:
        return LocalHistogram(name, documentation, labelnames, REGISTRY, _LATENCY_BUCKETS)
    histogram = Histogram(name, documentation, labelnames, buckets=_LATENCY_BUCKETS, registry=REGISTRY)
    return PublishedHistogram(histogram, PUBLISHER, _LATENCY_BUCKETS)


def _hot_gauge(name: str, documentation: str, multiprocess_mode: str) -> Gauge | GaugeChild:
    """A gauge without labels that requests move: prometheus_client's in one process; with
    workers, counted in a plain number that PUBLISHER writes to it as `_hot_counter`'s."""
    gauge = Gauge(name, documentation, multiprocess_mode=multiprocess_mode, registry=REGISTRY)
    return gauge if MULTIPROCESS_DIR is None else GaugeChild(gauge, PUBLISHER)


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = _hot_counter(
    "gateway_requests_total", "Requests answered, by route, status and model.", ["route", "status", "model"]
)
REQUEST_SECONDS = _hot_histogram(
    "gateway_request_duration_seconds", "Time from request to the last byte sent.", ["route"]
)
FIRST_BYTE_SECONDS = _hot_histogram(
    "gateway_time_to_first_byte_seconds", "Time from request to the first body byte sent.", ["route"]
)
UPSTREAM_SECONDS = _hot_histogram(
    "gateway_upstream_duration_seconds", "Duration of one upstream exchange.", ["provider"]
)
IN_FLIGHT = _hot_gauge("gateway_requests_in_flight", "Requests being served now.", "livesum")
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Failed upstream exchanges, by provider and kind.",
    ["provider", "kind"],
    registry=REGISTRY,
)
AUTH_DENIED = Counter(
    "gateway_auth_denied_total", "Requests refused by authentication or authorization, by reason.",
    ["reason"], registry=REGISTRY,
)
REFUSED = Counter(
    "gateway_requests_refused_total", "Requests or connections refused by a server limit, by reason.",
    ["reason"], registry=REGISTRY,
)
RELOADS = Counter(
    "gateway_config_reloads_total",
    "Configuration reloads, by result.",
    ["result"],
    registry=REGISTRY,
)
CATALOG_MODELS = Gauge(
    "gateway_catalog_models", "Models in the last good catalog answer, by provider.",
    ["provider"], multiprocess_mode="livemax", registry=REGISTRY,
)
CATALOG_FAILURES = Gauge(
    "gateway_catalog_consecutive_failures", "Failed catalog fetches in a row, by provider.",
    ["provider"], multiprocess_mode="livemax", registry=REGISTRY,
)
KEY_TOKENS = _hot_counter(
    "gateway_key_tokens_total", "Tokens reported by upstreams, by API key name and kind.", ["key", "kind"]
)
TOKENS = _hot_counter(
    "gateway_tokens_total", "Tokens reported by upstreams, by model and kind.", ["model", "kind"]
)
PROMPT_CACHE_TOKENS = _hot_counter(
    "gateway_prompt_cache_tokens_total",
    "Prompt tokens of agents' answers, by agent, target (provider/model) and kind: cached (read "
    "from the provider's prompt cache), cache_write, uncached. A high cached share shows that "
    "conversations stay with the target that has their prefix (the sticky strategy).",
    ["agent", "target", "kind"],
)
CIRCUIT_STATE = Gauge(
    "gateway_circuit_state",
    "Circuit breaker state per target: 0 closed, 1 half-open, 2 open (with workers, the "
    "most open of any worker's).",
    ["provider", "model"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
CIRCUIT_TRANSITIONS = Counter(
    "gateway_circuit_transitions_total",
    "Circuit breaker state changes per target, by the state entered.",
    ["provider", "model", "to"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "gateway_retries_total",
    "Tries of a target after its own failure (routes.yaml retry.attempts), by provider and outcome: "
    "answered or failed.",
    ["provider", "outcome"],
    registry=REGISTRY,
)
HEDGES = Counter(
    "gateway_hedges_total",
    "Hedged tries (an agent's hedge_after), by outcome: started; then first_answered (the slow "
    "target answered first after all), hedge_answered (the hedge did) or failed (neither).",
    ["outcome"],
    registry=REGISTRY,
)
CONTEXT_SKIPS = Counter(
    "gateway_context_target_skips_total",
    "Agent targets skipped because the prompt would not fit their context window or output limit.",
    ["target"],
    registry=REGISTRY,
)
CONTEXT_REJECTIONS = Counter(
    "gateway_context_rejections_total",
    "Requests refused with 400 context_length_exceeded because no target of the agent fits them.",
    ["agent"],
    registry=REGISTRY,
)
CONTEXT_TRIMMED = Counter(
    "gateway_context_trimmed_messages_total",
    "Messages dropped from prompts by an agent's overflow trim.",
    ["agent"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "gateway_fallbacks_total",
    "Agent requests that walked past their first target, by agent and outcome: "
    "answered_after_fallback (a later target answered) or all_failed (no target answered).",
    ["agent", "outcome"],
    registry=REGISTRY,
)
RATELIMIT_DECISIONS = Counter(
    "gateway_ratelimit_decisions_total",
    "Rate-limit and budget decisions, by scope (key, agent, target, provider) and result: allowed, "
    "refused (over a rate limit), over_budget (a key's spend cap reached), state_error_allowed or "
    "state_error_denied (the state was unreachable; state.on_state_error decided).",
    ["scope", "result"],
    registry=REGISTRY,
)
STATE_ERRORS = Counter(
    "gateway_state_errors_total",
    "State operations (limits, budgets, shared breakers) that failed or timed out, by operation: "
    "admit, settle, spent, open_breaker, open_breakers.",
    ["operation"],
    registry=REGISTRY,
)
SPEND_USD = Counter(
    "gateway_spend_usd_total",
    "USD spent by API key name: each answer's usage at the models: registry prices (cached prompt tokens at "
    "cached_input); answers of models without a price count nothing.",
    ["key"],
    registry=REGISTRY,
)
REDACTIONS = Counter(
    "gateway_redactions_total",
    "Secrets and personal data replaced by redaction (routes.yaml redaction:), by direction (request, "
    "answer) and kind (a built-in pattern's name, a custom pattern's, or high_entropy). Never a value.",
    ["direction", "kind"],
    registry=REGISTRY,
)
MCP_TOOL_CALLS = Counter(
    "gateway_mcp_tool_calls_total",
    "MCP tool calls run by the gateway, by server, tool (the server's own name; only tools of the "
    "configured servers) and outcome: ok, error (the tool answered an error), timeout, failed (the "
    "session or transport failed), unavailable (the server was not connected), bad_arguments, unknown.",
    ["server", "tool", "outcome"],
    registry=REGISTRY,
)
MCP_SERVER_UP = Gauge(
    "gateway_mcp_servers_up",
    "1 while the session to this MCP server is up, else 0 (with workers, 1 only when every worker's is).",
    ["server"],
    multiprocess_mode="livemin",
    registry=REGISTRY,
)
MCP_LOOP_ITERATIONS = Counter(
    "gateway_mcp_loop_iterations_total",
    "Model rounds of the MCP tool loop, by agent.",
    ["agent"],
    registry=REGISTRY,
)
MCP_LOOP_STOPS = Counter(
    "gateway_mcp_loop_stops_total",
    "MCP tool loops ended, by agent and reason (answered, max_iterations, max_tool_calls, deadline, "
    "client_tools, error, client_gone, refused, context_overflow).",
    ["agent", "reason"],
    registry=REGISTRY,
)


@dataclass(slots=True, eq=False)
class RequestMetrics:
    """The children of the metrics every request updates, kept per process (the Runtime holds
    one). Their labels are bounded: routes and agent targets are configured, statuses are
    HTTP's, model labels are capped by ops/stats.py."""

    requests: Children = field(default_factory=lambda: Children(REQUESTS))  # route, status, model
    seconds: Children = field(default_factory=lambda: Children(REQUEST_SECONDS))  # route
    first_byte: Children = field(default_factory=lambda: Children(FIRST_BYTE_SECONDS))  # route
    # (agent, target): its children of kind cached, cache_write and uncached (see `prompt_cache`)
    prompt_cache_kinds: dict[tuple[str, str], tuple[Any, Any, Any]] = field(default_factory=dict)

    def prompt_cache(self, agent: str, target: str) -> tuple[Any, Any, Any]:
        """An agent target's prompt-cache token children (cached, cache_write, uncached): made
        together at its first answer, so that all three are shown from then on, 0 or not; then
        found in one lookup rather than three."""
        kinds = self.prompt_cache_kinds.get((agent, target))
        if kinds is None:
            cached, written, uncached = (PROMPT_CACHE_TOKENS.labels(agent, target, kind)
                                         for kind in ("cached", "cache_write", "uncached"))
            kinds = self.prompt_cache_kinds[(agent, target)] = (cached, written, uncached)
        return kinds
