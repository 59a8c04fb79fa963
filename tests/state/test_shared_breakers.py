"""Breakers shared for real: two gateway processes sharing one redis-server, or one state process
(as the workers of one machine do), in front of one mock provider. A target tripped through
gateway A is skipped by gateway B without a single request of B's reaching it; and the same
between the two workers of one gateway (server.workers: 2, state: memory)."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from limits.state_server import start_process
from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, RedisServer, write_config

ROUTES = """
version: 1
server: {{listen: "127.0.0.1:${{GATEWAY_PORT}}", workers: {workers}}}
secrets: secrets.yaml
state: {{url: "{url}", breaker_sync: 50ms}}
breakers: {{failures: 2, window: 60s, cooldown: 10m}}
providers: {{mock: {{url: "{mock}/v1", api_key: {key}}}}}
agents: {{pair: {{models: [mock/{model}, mock/gpt-4o-mini]}}}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - {{match: GET /healthz, handler: health}}
  - {{match: GET /statsz, handler: statsz}}
"""


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    process = Mock()
    yield process
    process.stop()


def gateway(directory: Path, mock: Mock, url: str, model: str, env: dict[str, str] | None = None,
            workers: int = 1) -> Gateway:
    routes = ROUTES.format(url=url, mock=mock.url, key=PROVIDER_KEY, model=model, workers=workers)
    return Gateway(write_config(directory, routes, f"client_token: {CLIENT_TOKEN}\n"), env=env)


def gateways(tmp_path: Path, mock: Mock, url: str, model: str, env: dict[str, str] | None = None) -> list[Gateway]:
    return [gateway(tmp_path / name, mock, url, model, env) for name in ("a", "b")]


def chat(gateway: Gateway, model: str) -> tuple[int, dict]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    status, _, raw = gateway.request("POST", "/v1/chat/completions", json.dumps(body).encode())
    return status, json.loads(raw)


def breaker(gateway: Gateway, target: str) -> dict | None:
    return json.loads(gateway.get("/statsz")[2])["breakers"].get(target)


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def tripped_on_a_skipped_by_b(a: Gateway, b: Gateway, mock: Mock, model: str) -> None:
    mock.script_fault(model, fail=True, status=503)
    for _ in range(2):
        assert chat(a, f"mock/{model}")[0] == 503  # the provider's own 503: A's breaker opens
    assert breaker(a, f"mock/{model}")["state"] == "open"
    assert mock.seen(model) == 2

    until(lambda: (breaker(b, f"mock/{model}") or {}).get("state") == "open")
    shared = breaker(b, f"mock/{model}")
    assert shared["shared"] == "failures" and shared["reopens_at"] > time.time() + 500
    assert breaker(a, f"mock/{model}")["shared"] is None  # A's own, heard back
    status, answer = chat(b, f"mock/{model}")
    assert status == 503 and answer["error"]["code"] == "circuit_open"
    status, answer = chat(b, "pair")  # the agent walks past it to the next target
    assert status == 200 and "gpt-4o-mini" in answer["choices"][0]["message"]["content"]
    assert mock.seen(model) == 2  # B never sent it a request


def stopped(*processes: Gateway) -> None:
    for gateway in processes:
        assert gateway.stop() == 0, gateway.log()
        assert "Traceback" not in gateway.log() and "unreachable" not in gateway.log(), gateway.log()


def test_a_target_tripped_on_one_instance_is_skipped_by_another_sharing_redis(
    tmp_path: Path, mock: Mock
) -> None:
    redis = RedisServer()
    model = "gpt-shared-redis"
    a, b = gateways(tmp_path, mock, redis.url, model)
    try:
        tripped_on_a_skipped_by_b(a, b, mock, model)
    finally:
        stopped(a, b)
        redis.stop()


def test_a_target_tripped_in_one_worker_is_skipped_by_another_sharing_the_state_process(
    tmp_path: Path, mock: Mock
) -> None:
    socket = str(tmp_path / "state.sock")
    state = start_process(socket, stderr=subprocess.PIPE)
    model = "gpt-shared-state-process"
    a, b = gateways(tmp_path, mock, "memory", model, env={"GATEWAY_STATE_SOCKET": socket})
    try:
        tripped_on_a_skipped_by_b(a, b, mock, model)
    finally:
        stopped(a, b)
        state.terminate()
        _, err = state.communicate(timeout=10)
    assert state.returncode == 0 and "Traceback" not in err, err


def test_a_target_tripped_in_one_worker_is_skipped_by_its_sibling(tmp_path: Path, mock: Mock) -> None:
    """Two requests on one kept-alive connection trip the target in the worker that serves it; its
    sibling (which never saw the target fail) soon reports it open too, and no request of either
    worker reaches it again."""
    model = "gpt-shared-workers"
    mock.script_fault(model, fail=True, status=503)
    both = gateway(tmp_path, mock, "memory", model, workers=2)
    body = json.dumps({"model": f"mock/{model}", "messages": [{"role": "user", "content": "hi"}]})
    connection = http.client.HTTPConnection("127.0.0.1", both.port, timeout=30)
    try:
        for _ in range(2):  # one connection: one worker
            connection.request("POST", "/v1/chat/completions", body,
                               {"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 503
        assert mock.seen(model) == 2
        opened: dict[int, dict] = {}

        def every_worker_open() -> bool:  # /statsz on new connections: either worker answers
            stats = json.loads(both.get("/statsz")[2])
            opened[stats["pid"]] = stats["breakers"].get(f"mock/{model}") or {}
            return len(opened) == 2 and all(state.get("state") == "open" for state in opened.values())

        until(every_worker_open)
        assert sorted(str(state["shared"]) for state in opened.values()) == ["None", "failures"]
        for _ in range(10):
            status, answer = chat(both, f"mock/{model}")
            assert status == 503 and answer["error"]["code"] == "circuit_open"
        assert mock.seen(model) == 2
    finally:
        connection.close()
        stopped(both)
