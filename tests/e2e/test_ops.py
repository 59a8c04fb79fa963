"""/healthz and /metrics (open), /statsz (admin): counting what happened."""

from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families

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


def test_request_metrics_scrape_as_prometheus_counters_and_histograms(gateway: Gateway) -> None:
    """The metrics every request updates (the gateway's own in one process, ops/local_metrics.py)
    parse as Prometheus text: their types, cumulative buckets whose +Inf and count are the
    requests answered, a sum, and when each series was created."""
    client = gateway.openai()
    for _ in range(3):
        client.chat.completions.create(model="fast", messages=MESSAGES)
    families = {family.name: family for family in text_string_to_metric_families(gateway.metrics())}
    route = "POST /v1/chat/completions"
    requests = families["gateway_requests"]
    assert requests.type == "counter"
    answered = sum(s.value for s in requests.samples if s.name == "gateway_requests_total" and s.labels["route"] == route)
    assert answered >= 3
    for name in ("gateway_requests", "gateway_request_duration_seconds", "gateway_time_to_first_byte_seconds",
                 "gateway_upstream_duration_seconds", "gateway_tokens", "gateway_prompt_cache_tokens"):
        created = [s.value for s in families[name + "_created"].samples]  # the text format's own family
        assert created and all(1.6e9 < value <= time.time() for value in created), name
    durations = families["gateway_request_duration_seconds"]
    assert durations.type == "histogram"
    series = {s.name.rpartition("_")[2] + s.labels.get("le", ""): s.value
              for s in durations.samples if s.labels["route"] == route}
    buckets = [series["bucket" + le] for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
                                                 "2.5", "5.0", "10.0", "30.0", "60.0", "120.0", "300.0", "+Inf")]
    assert buckets == sorted(buckets) and buckets[-1] == series["count"] == answered
    assert series["sum"] > 0


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
