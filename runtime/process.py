"""What lives as long as the serving process, in one object handed to every handler.

A table lives from one reload to the next; the Runtime outlives them all: pooled
upstream connections, what the model catalog has learned, the /statsz counters,
the access log's pending lines, the circuit breakers, the requests in flight, the
request bodies held and what the agents' strategies remember.
server/lifecycle.py makes one per serving process, and handlers receive it with their
route and table, never through a module global, so two runtimes (two tests, two
pre-fork workers) share nothing.

The circuit breakers live here (a reload keeps what they learned), and so does the
limiter with its state backend (a reload keeps the counts unless `state:` changed), through
which the breakers' openings are shared with the other processes using the same state, and
the MCP servers' sessions (a reload keeps those whose url and credentials stay).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dsl.table import ServerSettings
from limits.context import Calibration
from limits.limiter import Limiter
from limits.shared_breakers import SharedBreakers
from limits.state import STATE_SOCKET_ENV
from ops import metrics
from ops.access_log import AccessLog
from ops.instance_stats import InstanceStats
from ops.metrics import RequestMetrics
from ops.request_ids import RequestIds
from ops.stats import Stats
from toolbox.box import Toolbox
from upstream.breaker import BreakerBoard
from upstream.catalog import Catalog
from upstream.client import UpstreamClient, open_client
from upstream.strategies import Strategies


class BodyBudget:
    """Bytes of request bodies being received into memory now, across all connections.

    Each connection may hold up to server.max_body; this bounds their sum
    (server.max_buffered_bodies). Bodies relayed as they arrive (`body: stream`)
    are not held, so not counted.
    """

    def __init__(self) -> None:
        self.held = 0

    def take(self, size: int, limit: int) -> bool:
        if self.held + size > limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


@dataclass(eq=False, slots=True)
class Runtime:
    """The serving process's state; see the module docstring."""

    upstream: UpstreamClient
    catalog: Catalog
    stats: Stats
    access_log: AccessLog
    bodies: BodyBudget
    strategies: Strategies  # agents' round-robin turns and targets' latency averages
    breakers: BreakerBoard  # configured by each table the router serves (server/app.py)
    limiter: Limiter  # rate limits and budgets; configured likewise
    shared_breakers: SharedBreakers  # the breakers' openings, to and from the state
    calibration: Calibration = field(default_factory=Calibration)  # prompt estimates per model
    toolbox: Toolbox = field(default_factory=Toolbox)  # MCP sessions; configured likewise
    in_flight: int = 0  # requests being served now: draining waits for none
    # Whether the in-flight gauge reads `in_flight` itself (one process), or handlers count on it.
    gauge_follows: bool = False
    instance: InstanceStats | None = None  # a pre-fork worker's window on its siblings' /statsz
    metrics: RequestMetrics = field(default_factory=RequestMetrics)  # the hot metrics' children
    request_ids: RequestIds = field(default_factory=RequestIds)  # x-request-id for requests without one

    @classmethod
    def start(cls, settings: ServerSettings, instance: InstanceStats | None = None) -> Runtime:
        """The process's runtime, made on the running event loop (the upstream client binds to it).

        `settings` are the first table's: what they size here changes only on restart.
        """
        upstream = open_client(settings.upstream_connections)
        access_log = AccessLog(shared=instance is not None)
        breakers, limiter = BreakerBoard(), Limiter(os.environ.get(STATE_SOCKET_ENV))
        shared = SharedBreakers(limiter)
        breakers.on_open = shared.publish
        runtime = cls(upstream, Catalog(upstream), Stats(), access_log, BodyBudget(), Strategies(),
                      breakers, limiter, shared, instance=instance)
        runtime.gauge_follows = metrics.follow_in_flight(lambda: runtime.in_flight)
        return runtime

    async def share_breakers(self) -> None:
        """Forever (a task while serving): apply the breakers opened by other processes."""
        await self.shared_breakers.follow(self.breakers.opened_elsewhere)
