"""Limits exact across instances and workers: two gateway instances of two workers each, sharing
one real redis-server, and one instance of two workers counting in its machine's state process.

400 requests fired at once at a key allowed 100 a minute: exactly 100 answered, 300 refused
with 429, Retry-After and OpenAI's x-ratelimit-* headers. The same for tokens, with requests
whose estimate equals the mock's reported usage, so that no settling frees tokens mid-burst.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, RedisServer, write_config

ROUTES = f"""
version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
  drain_timeout: 5s
  workers: 2
secrets: secrets.yaml
%(state)s
providers:
  mock:
    url: ${{MOCK_URL}}/v1
    api_key: {PROVIDER_KEY}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - {{match: GET /healthz, handler: health}}
  - {{match: GET /metrics, handler: metrics}}
"""
RPM_TOKEN = "shared-rpm-token-0123456789"
TPM_TOKEN = "shared-tpm-token-0123456789"
SECRETS = f"""client_token: {CLIENT_TOKEN}
api_keys:
  hundred-a-minute: {{token: {RPM_TOKEN}, limits: {{rpm: 100}}}}
  tokens-for-ten: {{token: {TPM_TOKEN}, limits: {{tpm: 190}}}}
"""
# Estimated at 14 prompt tokens (28 characters, 4 of framing, 3 of priming) plus max_tokens 5;
# the mock counts 14 words and answers 5: each request reserves and settles at 19 tokens.
NINETEEN = {"model": "mock/gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "a " * 14}]}


def fire(gateways: list[Gateway], token: str, count: int, body: dict) -> list[tuple[int, dict[str, str]]]:
    """`count` requests at once, spread over `gateways`; each one's status and headers."""
    raw = json.dumps(body).encode()

    def one(index: int) -> tuple[int, dict[str, str]]:
        status, headers, _ = gateways[index % len(gateways)].request(
            "POST", "/v1/chat/completions", raw, {"Authorization": f"Bearer {token}"})
        return status, headers

    with ThreadPoolExecutor(32) as pool:
        return list(pool.map(one, range(count)))


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def check_exact(results: list[tuple[int, dict[str, str]]], allowed: int, kind: str, limit: int) -> None:
    statuses = [status for status, _ in results]
    assert statuses.count(200) == allowed, sorted(statuses)
    assert statuses.count(429) == len(results) - allowed
    refused = next(headers for status, headers in results if status == 429)
    assert 1 <= int(refused["retry-after"]) <= 60
    assert refused[f"x-ratelimit-limit-{kind}"] == str(limit)
    assert refused[f"x-ratelimit-remaining-{kind}"] == "0"
    assert refused[f"x-ratelimit-reset-{kind}"].endswith("s")


def start(mock: Mock, directory: Path, state: str) -> Gateway:
    gateway = Gateway(write_config(directory, ROUTES % {"state": state}, SECRETS), env={"MOCK_URL": mock.url})
    assert "all 2 workers serving" in gateway.log()
    return gateway


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def test_two_instances_of_two_workers_sharing_redis_are_exact(mock: Mock, redis: RedisServer,
                                                              tmp_path: Path) -> None:
    state = f'state: {{url: "{redis.url}", timeout: 2s, on_state_error: deny}}'
    gateways = [start(mock, tmp_path / name, state) for name in ("a", "b")]
    try:
        check_exact(fire(gateways, RPM_TOKEN, 400, {"model": "mock/gpt-4o-mini", "max_tokens": 5,
                                                    "messages": [{"role": "user", "content": "hi"}]}),
                    100, "requests", 100)
        check_exact(fire(gateways, TPM_TOKEN, 100, NINETEEN), 10, "tokens", 190)
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0, gateway.log()
            assert "Traceback" not in gateway.log()


def test_one_instance_of_two_workers_counting_in_memory_is_exact(mock: Mock, tmp_path: Path) -> None:
    gateway = start(mock, tmp_path, "state: {url: memory, timeout: 2s, on_state_error: deny}")
    try:
        check_exact(fire([gateway], TPM_TOKEN, 100, NINETEEN), 10, "tokens", 190)
    finally:
        assert gateway.stop() == 0, gateway.log()
        assert "Traceback" not in gateway.log()


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_redis_down_mid_run_follows_on_state_error_and_then_resumes(
    mock: Mock, redis: RedisServer, tmp_path: Path, policy: str
) -> None:
    routes = (ROUTES % {"state": f'state: {{url: "{redis.url}", timeout: 300ms, on_state_error: {policy}}}'}
              ).replace("  workers: 2\n", "")
    gateway = Gateway(write_config(tmp_path, routes, SECRETS), env={"MOCK_URL": mock.url})
    body = {"model": "mock/gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    try:
        assert fire([gateway], RPM_TOKEN, 1, body)[0][0] == 200
        redis.stop()
        status, headers = fire([gateway], RPM_TOKEN, 1, body)[0]
        if policy == "deny":
            assert status == 503 and int(headers["retry-after"]) >= 1
        else:
            assert status == 200
        redis.start()
        deadline = time.monotonic() + 10
        while fire([gateway], RPM_TOKEN, 1, body)[0][0] != 200:  # the state rests 0.5 s after a failure
            assert time.monotonic() < deadline, "limits did not resume once Redis was back"
            time.sleep(0.05)
        assert 'gateway_state_errors_total{operation="admit"}' in gateway.metrics()
        until(lambda: fire([gateway], RPM_TOKEN, 1, body)[0][0] == 200 and "answers again" in gateway.log())
    finally:
        assert gateway.stop() == 0, gateway.log()
    log = gateway.log()
    assert "Traceback" not in log and log.count("unreachable") == 1
