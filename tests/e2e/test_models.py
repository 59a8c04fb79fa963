"""GET /v1/models: live catalogs, the registry and agents; it keeps answering when a provider fails."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.support import Gateway, Mock


def test_listing_merges_live_registry_and_agents(gateway: Gateway) -> None:
    models = {m.id: m for m in gateway.openai().models.list()}
    live = models["mock/gpt-4o-mini"]
    assert live.owned_by == "mock"
    assert live.model_extra["context_window"] == 128000
    assert live.model_extra["pricing"] == {"input_per_million": 0.15, "output_per_million": 0.6}
    assert models["mock/mock-model"].model_extra["context_window"] == 4096
    assert models["registry-only-model"].model_extra["context_window"] == 1000
    agent = models["fast"]
    assert agent.owned_by == "gateway" and agent.model_extra["targets"] == ["mock/gpt-4o-mini"]


def test_retrieve_one_model(gateway: Gateway) -> None:
    assert gateway.openai().models.retrieve("mock/gpt-4o-mini").id == "mock/gpt-4o-mini"
    assert gateway.openai().models.retrieve("fast").owned_by == "gateway"
    with pytest.raises(openai.NotFoundError):
        gateway.openai().models.retrieve("nope")


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_catalog_keeps_answering_when_a_provider_fails(fresh_gateway: Gateway, mock: Mock, fault: str) -> None:
    client = fresh_gateway.openai()
    assert "mock/gpt-4o-mini" in {m.id for m in client.models.list()}
    mock.config(models_fault=fault)
    try:
        time.sleep(0.3)  # past the 250 ms TTL: the next listing refreshes, and the refresh fails
        for _ in range(3):
            started = time.monotonic()
            ids = {m.id for m in client.models.list()}
            assert time.monotonic() - started < 2.0, "a hung provider must not hold the listing"
            assert "mock/gpt-4o-mini" in ids and "registry-only-model" in ids and "fast" in ids
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            health = json.loads(fresh_gateway.get("/statsz")[2])["catalog"]["mock"]
            if health["consecutive_failures"]:
                break
            time.sleep(0.2)
        assert health["consecutive_failures"] >= 1 and health["models"] > 0
        assert 'gateway_catalog_consecutive_failures{provider="mock"}' in fresh_gateway.metrics()
    finally:
        mock.config(models_fault=None)
