"""The live model catalog: each provider's models endpoint, fetched in the background.

Held by the runtime (not per table) so that a reload keeps what was learned. A
request never waits longer than the catalog timeout, and a provider that fails
keeps its last good answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from dsl.table import Provider, Table
from ops import metrics
from upstream.client import UpstreamClient
from upstream.ended import Ended
from upstream.exchange import Exchange
from upstream.failure import error_kind
from upstream.request import provider_request

log = logging.getLogger("gateway.catalog")


@dataclass(slots=True)
class ProviderCatalog:
    """What one provider last said about its models, and how fetching it has gone."""

    url: str
    models: list[dict[str, Any]] = field(default_factory=list)
    fetched_at: float | None = None  # time.time() of the last good answer
    last_error: str | None = None
    failures: int = 0  # consecutive
    refreshing: asyncio.Task[None] | None = None

    def health(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "models": len(self.models),
            "age_seconds": round(time.time() - self.fetched_at, 1) if self.fetched_at else None,
            "last_error": self.last_error,
            "consecutive_failures": self.failures,
        }


class Catalog:
    """Provider name → ProviderCatalog, refreshed lazily when stale."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.providers: dict[str, ProviderCatalog] = {}

    async def fresh(self, table: Table) -> None:
        """Start refreshes of stale entries; wait (bounded) only for providers never fetched."""
        now = time.time()
        first_fetches = []
        for provider in table.providers.values():
            url = provider.url_for("models")
            entry = self.providers.get(provider.name)
            if entry is None or entry.url != url:
                entry = self.providers[provider.name] = ProviderCatalog(url)
            stale = entry.fetched_at is None or now - entry.fetched_at > table.catalog_ttl
            if stale and entry.refreshing is None:
                entry.refreshing = asyncio.ensure_future(
                    self._refresh(entry, provider, table.catalog_timeout)
                )
            if entry.fetched_at is None and entry.failures == 0 and entry.refreshing is not None:
                first_fetches.append(entry.refreshing)
        if first_fetches:
            await asyncio.wait(first_fetches, timeout=table.catalog_timeout)

    async def _refresh(self, entry: ProviderCatalog, provider: Provider, timeout: float) -> None:
        body = bytearray()
        try:
            exchange = Exchange(self.client, _ignore, body.extend)
            try:
                ended = await exchange.send(provider_request(provider, entry.url, "GET", None, (), timeout))
            except asyncio.CancelledError:
                exchange.cancel()  # the gateway is stopping: the transfer stops too
                raise
            models = _parse(ended, body)
            if isinstance(models, str):
                entry.failures += 1
                entry.last_error = models
                log.warning(
                    "model catalog of %s unavailable (%s); keeping the last good answer",
                    provider.name,
                    models,
                )
            else:
                entry.models, entry.fetched_at = models, time.time()
                entry.failures, entry.last_error = 0, None
            metrics.CATALOG_MODELS.labels(provider=provider.name).set(len(entry.models))
            metrics.CATALOG_FAILURES.labels(provider=provider.name).set(entry.failures)
        finally:
            entry.refreshing = None

    def models(self, provider: str) -> list[dict[str, Any]]:
        entry = self.providers.get(provider)
        return entry.models if entry is not None else []

    def health(self) -> dict[str, Any]:
        return {name: entry.health() for name, entry in sorted(self.providers.items())}


def _ignore(exchange: Exchange) -> None:
    """The catalog reads every answer whole."""


def _parse(ended: Ended, body: bytearray) -> list[dict[str, Any]] | str:
    """The `data` list of an OpenAI or Anthropic models answer, or why there is none."""
    if ended.failed or ended.status >= 400:
        return error_kind(ended)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "invalid_json"
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return "no_data"
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
