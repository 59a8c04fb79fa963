"""Operational endpoints: /healthz, /metrics, /statsz."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from dsl.handler_rules import HandlerRules
from handlers.base import GatewayHandler
from ops import metrics


class HealthHandler(GatewayHandler):
    rules = HandlerRules("health", open=True)

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("OK")

    head = get


class MetricsHandler(GatewayHandler):
    rules = HandlerRules("metrics", open=True)

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(metrics.exposition())


class StatsHandler(GatewayHandler):
    # /statsz names API keys and their usage: an operator's page, like debug.
    rules = HandlerRules("statsz", admin=True)

    async def get(self) -> None:
        runtime = self.runtime
        if runtime.instance is None:
            snapshot = runtime.stats.snapshot()
        else:  # pre-fork workers: counters of the whole instance, the rest as this worker sees it
            snapshot = runtime.instance.snapshot(runtime.stats, runtime.in_flight)
        snapshot["catalog"] = self.runtime.catalog.health()
        snapshot["breakers"] = self.runtime.breakers.snapshot()
        snapshot["strategies"] = self.runtime.strategies.snapshot(self.table.agents)
        snapshot["limits"] = await self.runtime.limiter.snapshot()
        snapshot["mcp"] = self.runtime.toolbox.snapshot()
        snapshot["context"] = {"calibration": {model: round(ratio, 3) for model, ratio
                                               in self.runtime.calibration.ratios.items()}}
        snapshot["config"] = {
            "source": self.table.source,
            "providers": sorted(self.table.providers),
            "agents": {name: [t.label for t in agent.targets] for name, agent in self.table.agents.items()},
        }
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(snapshot))
