"""Circuit breakers end to end: a real gateway of its own in front of the mock provider.

A target's breaker opens after failures and then no request reaches it (the mock's
request log shows none); the client of an all-open agent gets 503 with Retry-After in
its own shape; a refused key opens the whole provider; a 429 locks its target; the state
survives SIGHUP; a millisecond cooldown lets a recovered target half-open and close.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, access_line, free_port, write_config

ROUTES = """
version: 1
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
  drain_timeout: 5s
secrets: secrets.yaml
breakers: {failures: 2, window: 60s, cooldown: %(cooldown)s, max_cooldown: 10m, probes: 1, successes: 2}
providers:
  mock:
    url: ${MOCK_URL}/v1
    api_key: %(key)s
  keyed:
    url: ${MOCK_URL}/v1
    api_key: %(key)s
  flaky:
    url: %(flaky_url)s
    api_key: %(key)s
%(extra)s
agents:
  pair: {models: [mock/fault-500, mock/gpt-4o-mini]}
  dead: {models: [mock/fault-503]}
  solo: {models: [flaky/gpt-recovered]}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/messages, handler: chat, ingress: anthropic}
  - {match: POST /v1/embeddings, handler: forward, providers: [keyed]}
  - {match: GET /healthz, handler: health}
  - {match: GET /statsz, handler: statsz}
  - {match: GET /metrics, handler: metrics}
"""
SPARE = f"  spare:\n    url: ${{MOCK_URL}}/v1\n    api_key: {PROVIDER_KEY}\n"
MESSAGES = [{"role": "user", "content": "hi"}]


def routes(mock: Mock, cooldown: str = "10m", flaky_url: str = "", extra: str = "") -> str:
    flaky_url = flaky_url or f"http://127.0.0.1:{free_port()}/v1"
    return ROUTES % {"cooldown": cooldown, "key": PROVIDER_KEY, "flaky_url": flaky_url, "extra": extra}


def start(mock: Mock, directory: Path, text: str) -> Gateway:
    config = write_config(directory, text, f"client_token: {CLIENT_TOKEN}\n")
    return Gateway(config, env={"MOCK_URL": mock.url})


@pytest.fixture
def breakers(mock: Mock, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway whose breakers open after 2 failures and stay open for 10 minutes."""
    process = start(mock, tmp_path, routes(mock, extra=SPARE))
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


def chat(gateway: Gateway, model: str, path: str = "/v1/chat/completions") -> tuple[int, dict[str, str], dict]:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 20}
    status, headers, raw = gateway.request("POST", path, json.dumps(body).encode())
    return status, headers, json.loads(raw)


def seen_models(mock: Mock) -> list[str]:
    return [json.loads(r["body"]).get("model") for r in mock.requests() if r.get("body")]


def breaker(gateway: Gateway, target: str) -> dict:
    return json.loads(gateway.get("/statsz")[2])["breakers"][target]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_an_open_target_is_skipped_without_a_request_and_the_agent_answers_from_the_next(breakers, mock):
    for _ in range(2):
        status, _, answer = chat(breakers, "pair")
        assert status == 200 and "gpt-4o-mini" in answer["choices"][0]["message"]["content"]
    mock.clear()
    for _ in range(3):
        status, _, answer = chat(breakers, "pair")
        assert status == 200
    assert seen_models(mock) == ["gpt-4o-mini"] * 3
    request_id = "skipped-open-target"
    status, _, _ = breakers.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "pair", "messages": MESSAGES}).encode(), {"x-request-id": request_id})
    assert status == 200
    assert access_line(breakers, request_id)["tried"] == [
        {"target": "mock/fault-500", "status": None, "kind": "circuit_open"},
        {"target": "mock/gpt-4o-mini", "status": 200},
    ]
    state = breaker(breakers, "mock/fault-500")
    assert state["state"] == "open" and state["trips"] == 1 and state["reopens_at"] > time.time() + 500
    metrics = breakers.metrics()
    assert 'gateway_circuit_state{model="fault-500",provider="mock"} 2.0' in metrics
    assert 'gateway_circuit_transitions_total{model="fault-500",provider="mock",to="open"} 1.0' in metrics
    assert 'gateway_circuit_state{model="gpt-4o-mini",provider="mock"} 0.0' in metrics


def test_every_target_open_answers_503_with_retry_after_in_the_clients_shape(breakers, mock):
    for _ in range(2):
        assert chat(breakers, "dead")[0] == 503  # the provider's own 503, walked through
    mock.clear()
    status, headers, answer = chat(breakers, "dead")
    assert status == 503 and answer["error"]["code"] == "circuit_open"
    assert 590 <= int(headers["retry-after"]) <= 600
    status, headers, answer = chat(breakers, "dead", "/v1/messages")
    assert status == 503 and answer["type"] == "error" and answer["error"]["type"] == "overloaded_error"
    assert 590 <= int(headers["retry-after"]) <= 600
    assert seen_models(mock) == []


def test_a_provider_refusing_the_key_opens_all_its_targets_and_forward_routes(breakers, mock):
    assert chat(breakers, "keyed/fault-401")[0] == 502
    mock.clear()
    status, headers, answer = chat(breakers, "keyed/gpt-4o-mini")
    assert status == 503 and answer["error"]["code"] == "circuit_open" and int(headers["retry-after"]) > 500
    body = json.dumps({"model": "text-embedding-3-small", "input": "hi"}).encode()
    status, headers, _ = breakers.request("POST", "/v1/embeddings", body)
    assert status == 503 and int(headers["retry-after"]) > 500
    assert mock.requests() == []
    assert chat(breakers, "mock/gpt-4o-mini")[0] == 200  # another provider on the same host is fine


def test_a_429_locks_its_target_for_its_retry_after(breakers, mock):
    assert chat(breakers, "mock/fault-429")[0] == 429  # the mock says Retry-After: 1
    mock.clear()
    status, headers, _ = chat(breakers, "mock/fault-429")
    assert status == 503 and headers["retry-after"] == "1"
    assert mock.requests() == []
    assert breaker(breakers, "mock/fault-429")["reopens_at"] <= time.time() + 1


def test_breaker_state_survives_sighup_for_targets_that_still_exist(breakers, mock):
    for _ in range(2):
        chat(breakers, "pair")
        chat(breakers, "spare/fault-500")
    assert breaker(breakers, "spare/fault-500")["state"] == "open"
    write_config(breakers.config.parent, routes(mock))  # without the provider `spare`
    breakers.signal(signal.SIGHUP)
    assert wait_for(lambda: "configuration reloaded" in breakers.log())
    statsz = json.loads(breakers.get("/statsz")[2])["breakers"]
    assert statsz["mock/fault-500"]["state"] == "open" and statsz["mock/fault-500"]["trips"] == 1
    assert "spare/fault-500" not in statsz
    mock.clear()
    assert chat(breakers, "pair")[0] == 200
    assert seen_models(mock) == ["gpt-4o-mini"]


def test_a_millisecond_cooldown_half_opens_and_successes_close(mock, tmp_path):
    gateway = start(mock, tmp_path, routes(mock, cooldown="100ms"))
    try:
        for _ in range(2):
            assert chat(gateway, "solo")[0] == 502  # nothing listens at flaky's port
        assert breaker(gateway, "flaky/gpt-recovered")["trips"] == 1
        write_config(gateway.config.parent, routes(mock, cooldown="100ms", flaky_url=f"{mock.url}/v1"))
        gateway.signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in gateway.log())
        time.sleep(0.15)
        mock.clear()
        assert chat(gateway, "solo")[0] == 200
        assert breaker(gateway, "flaky/gpt-recovered")["state"] == "half_open"
        assert chat(gateway, "solo")[0] == 200
        state = breaker(gateway, "flaky/gpt-recovered")
        assert state["state"] == "closed" and state["trips"] == 1
        assert seen_models(mock) == ["gpt-recovered"] * 2
        metrics = gateway.metrics()
        for to in ("open", "half_open", "closed"):
            assert f'gateway_circuit_transitions_total{{model="gpt-recovered",provider="flaky",to="{to}"}} 1.0' in metrics
        assert 'gateway_circuit_state{model="gpt-recovered",provider="flaky"} 0.0' in metrics
    finally:
        assert gateway.stop() == 0


def test_a_failed_probe_reopens_and_a_recovered_target_closes(mock, tmp_path):
    gateway = start(mock, tmp_path, routes(mock, cooldown="100ms"))
    model = "gpt-probe-target"
    try:
        mock.clear_faults()
        mock.script_fault(model, fail=3, status=500)
        for _ in range(2):
            assert chat(gateway, f"mock/{model}")[0] == 502
        time.sleep(0.12)  # past the 100 ms cooldown: the next request is a probe
        assert chat(gateway, f"mock/{model}")[0] == 502  # the probe fails: open again, for 200 ms
        assert breaker(gateway, f"mock/{model}")["trips"] == 2
        time.sleep(0.22)
        for _ in range(2):
            assert chat(gateway, f"mock/{model}")[0] == 200
        assert breaker(gateway, f"mock/{model}")["state"] == "closed"
        assert mock.seen(model) == 5
        metrics = gateway.metrics()
        for to, times in (("open", 2), ("half_open", 2), ("closed", 1)):
            line = f'gateway_circuit_transitions_total{{model="{model}",provider="mock",to="{to}"}} {times}.0'
            assert line in metrics
    finally:
        mock.clear_faults()
        assert gateway.stop() == 0


def hasty(breakers: str) -> str:
    """A provider on the mock whose own breakers override the top-level ones (failures: 2)."""
    return f"  hasty:\n    url: ${{MOCK_URL}}/v1\n    api_key: {PROVIDER_KEY}\n    breakers: {breakers}\n"


def test_a_providers_own_breaker_settings_apply_to_its_targets_and_a_reload_changes_them(mock, tmp_path):
    gateway = start(mock, tmp_path, routes(mock, extra=hasty("{failures: 1}")))
    try:
        assert chat(gateway, "hasty/fault-500")[0] == 502
        assert chat(gateway, "mock/fault-500")[0] == 502
        assert breaker(gateway, "hasty/fault-500")["state"] == "open"  # after one failure: its own setting
        assert breaker(gateway, "mock/fault-500")["state"] == "closed"  # the top level's two
        mock.clear()
        status, _, answer = chat(gateway, "hasty/fault-500")
        assert status == 503 and answer["error"]["code"] == "circuit_open"
        assert chat(gateway, "mock/fault-500")[0] == 502
        assert seen_models(mock) == ["fault-500"]  # the default provider's request only
        write_config(gateway.config.parent, routes(mock, extra=hasty("{enabled: false}")))
        gateway.signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in gateway.log())
        mock.clear()
        for _ in range(3):
            assert chat(gateway, "hasty/fault-500")[0] == 502  # exempt now: every request is tried
        assert seen_models(mock) == ["fault-500"] * 3
        statsz = json.loads(gateway.get("/statsz")[2])["breakers"]
        assert "hasty/fault-500" not in statsz and statsz["mock/fault-500"]["state"] == "open"
    finally:
        assert gateway.stop() == 0
        assert "Traceback" not in gateway.log(), gateway.log()
