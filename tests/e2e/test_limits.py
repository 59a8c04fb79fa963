"""Rate limits and budgets end to end: a real gateway (state: memory) in front of the mock.

A key over its requests or tokens per minute gets 429 in its own error shape with
Retry-After and OpenAI's x-ratelimit-* headers, exactly at the limit however many requests
arrive at once; a target over its own limit is skipped and the agent walks on; a budget is
spent at the registry's prices and then refused with `insufficient_quota`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

from tests.support import CLIENT_TOKEN, Gateway, Mock, access_line, own_gateway

ROUTES = """
models:
  gpt-priced: {price: {input: 1000, output: 1000}}
agents:
  pair: {models: [mock/gpt-limited, mock/gpt-spare]}
limits:
  targets: {mock/gpt-limited: {rpm: 1}}
  output_reserve: 16
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/messages, handler: chat, ingress: anthropic}
  - {match: POST /v1/embeddings, handler: forward, providers: [mock]}
  - {match: GET /healthz, handler: health}
  - {match: GET /statsz, handler: statsz}
"""
RPM_TOKEN = "rpm-limited-token-0123456789"
TPM_TOKEN = "tpm-limited-token-0123456789"
BUDGET_TOKEN = "budget-limited-token-0123456789"
SECRETS = f"""client_token: {CLIENT_TOKEN}
api_keys:
  five-a-minute:
    token: {RPM_TOKEN}
    limits: {{rpm: 5}}
  few-tokens:
    token: {TPM_TOKEN}
    limits: {{tpm: 100}}
  one-cent:
    token: {BUDGET_TOKEN}
    budget: {{usd: 0.01, per: day}}
"""
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with own_gateway(mock, tmp_path_factory.mktemp("limits"), ROUTES, SECRETS) as process:
        yield process


def chat(gateway: Gateway, token: str, model: str = "mock/gpt-4o-mini", **extra: object
         ) -> tuple[int, dict[str, str], dict]:
    body = json.dumps({"model": model, "messages": MESSAGES, "max_tokens": 8, **extra}).encode()
    status, headers, raw = gateway.request(
        "POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {token}"})
    return status, headers, json.loads(raw)


def test_a_key_gets_exactly_its_requests_per_minute_when_they_arrive_at_once(gateway: Gateway) -> None:
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: chat(gateway, RPM_TOKEN), range(12)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 5 + [429] * 7
    refused = next((headers, body) for status, headers, body in results if status == 429)
    headers, body = refused
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "requests"
    assert "five-a-minute" in body["error"]["message"] and RPM_TOKEN not in json.dumps(body)
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    answered = next(headers for status, headers, _ in results if status == 200)
    assert answered["x-ratelimit-limit-requests"] == "5"


def test_an_anthropic_client_gets_the_refusal_in_its_own_shape(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=RPM_TOKEN, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as refused:
        for _ in range(6):  # the first test spent the minute's five already, or this does
            client.messages.create(model="claude/claude-x", max_tokens=8, messages=MESSAGES)
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert refused.value.response.headers["retry-after"]


def test_tokens_per_minute_count_the_real_usage(gateway: Gateway) -> None:
    """The mock reports a handful of tokens per answer; 100 a minute then admits a few requests,
    and refuses once the window is full, counting tokens (type tokens)."""
    statuses = []
    for _ in range(40):
        status, headers, body = chat(gateway, TPM_TOKEN)
        statuses.append(status)
        if status == 429:
            assert body["error"]["type"] == "tokens"
            assert headers["x-ratelimit-limit-tokens"] == "100"
            break
    admitted = statuses.count(200)
    assert statuses[-1] == 429 and admitted >= 3  # reserved 16 + prompt, settled at about 8 each


def test_a_target_over_its_own_limit_is_skipped_and_the_agent_walks_on(gateway: Gateway) -> None:
    first = chat(gateway, CLIENT_TOKEN, "pair")
    assert first[0] == 200 and "gpt-limited" in first[2]["choices"][0]["message"]["content"]
    request_id = "limited-target-skipped"
    status, _, raw = gateway.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "pair", "messages": MESSAGES}).encode(), {"x-request-id": request_id})
    assert status == 200 and "gpt-spare" in json.loads(raw)["choices"][0]["message"]["content"]
    tried = access_line(gateway, request_id)["tried"]
    assert tried == [{"target": "mock/gpt-limited", "status": 429, "kind": "over_limit"},
                     {"target": "mock/gpt-spare", "status": 200}]


def test_a_target_over_its_limit_alone_answers_429_with_retry_after(gateway: Gateway) -> None:
    chat(gateway, CLIENT_TOKEN, "mock/gpt-limited")
    status, headers, body = chat(gateway, CLIENT_TOKEN, "mock/gpt-limited")
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert "mock/gpt-limited" in body["error"]["message"] and int(headers["retry-after"]) >= 1


def test_a_budget_is_spent_at_registry_prices_and_then_refused(gateway: Gateway) -> None:
    """$1000 per million tokens: each answer costs about a cent, so the second or third is refused."""
    client = gateway.openai(BUDGET_TOKEN)
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(10):
            client.chat.completions.create(model="mock/gpt-priced", messages=MESSAGES, max_tokens=8)
    assert refused.value.code == "insufficient_quota"
    spend = json.loads(gateway.get("/statsz")[2])["limits"]["budgets"]["one-cent"]
    assert spend["usd"] >= 0.01 and spend["budget"] == 0.01


def test_a_forward_route_counts_against_the_key_too(gateway: Gateway, mock: Mock) -> None:
    client = gateway.openai(RPM_TOKEN)
    with pytest.raises(openai.RateLimitError):
        for _ in range(6):
            client.embeddings.create(model="emb", input="x")
