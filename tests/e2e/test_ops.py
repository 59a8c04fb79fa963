"""/healthz and /metrics (open), /statsz (admin): counting what happened."""

from __future__ import annotations

import json

from tests.support import Gateway

MESSAGES = [{"role": "user", "content": "count me"}]


def test_health_is_open(gateway: Gateway) -> None:
    status, headers, body = gateway.request("GET", "/healthz", headers={"Authorization": None})
    assert (status, body) == (200, b"OK")


def test_metrics_count_requests_tokens_and_latency(gateway: Gateway) -> None:
    client = gateway.openai()
    client.chat.completions.create(model="fast", messages=MESSAGES)
    list(
        client.chat.completions.create(
            model="fast", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    status, headers, body = gateway.request("GET", "/metrics", headers={"Authorization": None})
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert 'gateway_requests_total{model="fast",route="POST /v1/chat/completions",status="200"}' in text
    assert 'gateway_tokens_total{kind="output",model="fast"}' in text
    assert 'gateway_request_duration_seconds_bucket{le="0.005",route="POST /v1/chat/completions"}' in text
    assert "gateway_time_to_first_byte_seconds_count" in text
    assert 'gateway_upstream_duration_seconds_count{provider="mock"}' in text
    assert "gateway_requests_in_flight" in text


def test_metrics_count_upstream_errors_by_kind(gateway: Gateway) -> None:
    gateway.openai().chat.completions.create(model="refused", messages=MESSAGES)
    text = gateway.metrics()
    assert 'gateway_upstream_errors_total{kind="connect",provider="down"}' in text


def test_statsz_reports_models_and_uptime(gateway: Gateway) -> None:
    gateway.openai().chat.completions.create(model="fast", messages=MESSAGES)
    status, _, body = gateway.request("GET", "/statsz")  # with the admin token
    stats = json.loads(body)
    assert status == 200 and stats["uptime_seconds"] > 0
    fast = stats["models"]["fast"]
    assert fast["requests"] >= 1 and fast["input_tokens"] >= 2 and fast["output_tokens"] >= 8
    assert "mock" in stats["config"]["providers"]


def test_statsz_names_keys_so_it_is_admin_only_by_default(gateway: Gateway) -> None:
    status, _, body = gateway.request("GET", "/statsz", headers={"Authorization": None})
    assert status == 401 and b"keys" not in body
