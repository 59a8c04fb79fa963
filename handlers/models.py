"""GET /v1/models and /v1/models/{id}: live catalogs, the static registry and agents, merged.

Live models are named provider/model, as clients address them. Registry entries add
what providers do not report (context window, output limit, capabilities, prices);
an entry that no live model matched is listed on its own, so the registry still
answers while a provider's models endpoint is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import orjson

from dsl.handler_rules import HandlerRules
from dsl.table import Route, Table
from handlers.base import GatewayHandler
from upstream.catalog import Catalog


def _catalog_sources(route: Route, table: Table) -> str:
    return ", ".join(f"{p}/models" for p in table.providers) or "-"


class ModelsHandler(GatewayHandler):
    rules = HandlerRules("models", upstream=_catalog_sources)

    async def get(self, model: str | None = None) -> None:
        await self.runtime.catalog.fresh(self.table)
        listing = build_listing(self.table, self.runtime.catalog)
        self.set_header("Content-Type", "application/json")
        if model is not None:
            model = unquote(model)  # SDKs percent-encode the slash of provider/model
        if model is None:
            self.finish(orjson.dumps({"object": "list", "data": listing}))
            return
        found = next((item for item in listing if item["id"] == model), None)
        if found is None:
            return self.fail(404, f"model '{model}' does not exist", "model_not_found")
        self.finish(orjson.dumps(found))


def build_listing(table: Table, catalog: Catalog) -> list[dict[str, Any]]:
    registry = table.models
    listing: list[dict[str, Any]] = []
    matched: set[str] = set()
    for provider in table.providers.values():
        for live in catalog.models(provider.name):
            full = f"{provider.name}/{live['id']}"
            key = full if full in registry else live["id"]
            matched.add(key)
            item = {
                "id": full,
                "object": "model",
                "created": live.get("created") or 0,
                "owned_by": provider.name,
            }
            listing.append(item | _registry_fields(registry.get(key)))
    for name, info in registry.items():
        if name not in matched:
            owner = name.partition("/")[0] if "/" in name else "registry"
            listing.append(
                {"id": name, "object": "model", "created": 0, "owned_by": owner} | _registry_fields(info)
            )
    for agent in table.agents.values():
        first = agent.targets[0] if agent.targets else None
        info = (registry.get(first.label) or registry.get(first.model)) if first else None
        listing.append(
            {
                "id": agent.name,
                "object": "model",
                "created": 0,
                "owned_by": "gateway",
                "targets": [t.label for t in agent.targets],
            }
            | _registry_fields(info)
        )
    return listing


def _registry_fields(info: Mapping[str, Any] | None) -> dict[str, Any]:
    if not info:
        return {}
    fields: dict[str, Any] = {}
    if "context_window" in info:
        fields["context_window"] = info["context_window"]
    if "max_output" in info:
        fields["max_output_tokens"] = info["max_output"]
    if "capabilities" in info:
        fields["capabilities"] = list(info["capabilities"])
    if "price" in info:
        fields["pricing"] = {f"{k}_per_million": v for k, v in info["price"].items()}
    return fields
