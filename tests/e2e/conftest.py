"""Fixtures of the end-to-end tests: one mock provider and one gateway for the session, both real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ALT_KEY, CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, free_port, write_config

STANDARD_ROUTES = """
version: 1
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  drain_timeout: 5s
secrets: secrets.yaml
providers:
  mock:
    url: ${MOCK_URL}/v1
    format: openai
    api_key: %(provider_key)s
  slow:
    url: ${MOCK_URL}/v1
    api_key: %(provider_key)s
    timeout: 500ms
  down:
    url: http://127.0.0.1:%(closed_port)d/v1
    api_key: %(provider_key)s
  claude:
    url: ${MOCK_URL}/v1
    format: anthropic
    api_key: %(provider_key)s
  alt:
    url: ${MOCK_URL}/v1
    api_key: %(alt_key)s
    format_urls:
      images/generations: ${MOCK_URL}/custom/images
agents:
  fast: {models: [mock/gpt-4o-mini]}
  fallback: {models: [mock/fault-500, mock/gpt-4o-mini]}
  refused: {models: [down/gpt-4o-mini, mock/gpt-4o-mini]}
  limited: {models: [mock/fault-429]}
  badreq: {models: [mock/fault-422, mock/gpt-4o-mini]}
  toolong: {models: [mock/fault-400, mock/gpt-4o-mini]}
  empty: {models: [mock/fault-empty, mock/gpt-4o-mini]}
  hang: {models: [slow/fault-hang, mock/gpt-4o-mini]}
  allfail: {models: [mock/fault-500, mock/fault-503]}
  badkey: {models: [mock/fault-401]}
models:
  gpt-4o-mini: {context_window: 128000, max_output: 16384, capabilities: [tools], price: {input: 0.15, output: 0.6}}
  mock/mock-model: {context_window: 4096}
  registry-only-model: {context_window: 1000}
catalog: {ttl: 250ms, timeout: 3s}
# The session's tests share one mock and one gateway: their faults would trip each other's
# breakers (fault-401 opens every mock target). test_breakers.py runs gateways of its own.
breakers: {enabled: false}
routes:
  - match: POST /v1/chat/completions
    handler: chat
  - match: POST /v1/messages
    handler: chat
    ingress: anthropic
  - {match: POST /v1/messages/count_tokens, handler: count_tokens, ingress: anthropic}
  - match: ANY /proxy/{provider}/{path*}
    handler: passthrough
  - match: GET /healthz
    handler: health
  - match: GET /statsz
    handler: statsz
  - match: GET /metrics
    handler: metrics
  - {match: "GET /debug/{kind*}", handler: debug}
  - {match: GET /v1/models, handler: models}
  - {match: "GET /v1/models/{model*}", handler: models}
  - {match: POST /v1/embeddings, handler: forward}
  - {match: POST /v1/images/generations, handler: forward, prefer: alt}
  - {match: POST /v1/audio/transcriptions, handler: forward, body: stream}
  - {match: POST /v1/audio/speech, handler: forward}
  - {match: POST /v1/moderations, handler: forward, prefer: not-declared}
  - {match: POST /v1/rerank, handler: forward, providers: [down, alt]}
  - {match: POST /v1/responses, handler: forward}
  - {match: "GET|DELETE /v1/responses/{id}", handler: forward}
  - {match: POST /v1/a2a, handler: forward, prefer: alt}
  - {match: GET /v1/files, handler: forward}
  - {match: POST /v1/files, handler: forward, body: stream}
  - {match: "GET|DELETE /v1/files/{id}", handler: forward}
  - {match: "GET /v1/files/{id}/content", handler: forward}
  - {match: GET|POST /v1/batches, handler: forward}
  - {match: "GET /v1/batches/{id}", handler: forward}
  - {match: "POST /v1/batches/{id}/cancel", handler: forward}
"""

STANDARD_SECRETS = f"client_token: {CLIENT_TOKEN}\n"


def standard_routes(server: str = "") -> str:
    """The routes.yaml of most tests; `server` adds settings (indented YAML lines) to its server block."""
    routes = STANDARD_ROUTES % {"provider_key": PROVIDER_KEY, "alt_key": ALT_KEY, "closed_port": free_port()}
    return routes.replace("  drain_timeout: 5s\n", "  drain_timeout: 5s\n" + server)


def standard_gateway(
    mock: Mock, directory: Path, server: str = "", secrets: str = STANDARD_SECRETS, env: dict[str, str] | None = None
) -> Gateway:
    """A gateway of the standard routes (with `server` settings added) in front of `mock`."""
    config = write_config(directory, standard_routes(server), secrets)
    return Gateway(config, env={"MOCK_URL": mock.url, **(env or {})})


@pytest.fixture(scope="session")
def mock() -> Iterator[Mock]:
    process = Mock()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    process = standard_gateway(mock, tmp_path_factory.mktemp("gateway"))
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture
def fresh_gateway(mock: Mock, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway of the test's own, for tests that signal or reconfigure it."""
    process = standard_gateway(mock, tmp_path)
    yield process
    process.stop()
