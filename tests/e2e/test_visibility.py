"""What the walk over targets leaves behind: the access log's `tried`, /statsz strategies, /metrics fallbacks."""

from __future__ import annotations

import json
import uuid

from tests.support import Gateway, access_line, metric


def post(gateway: Gateway, path: str, document: dict) -> tuple[int, str]:
    request_id = uuid.uuid4().hex
    status, _, _ = gateway.request("POST", path, json.dumps(document).encode(), {"x-request-id": request_id})
    return status, request_id


def chat(gateway: Gateway, model: str) -> tuple[int, str]:
    return post(gateway, "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_the_access_log_lists_each_target_tried_and_why_it_failed(gateway: Gateway) -> None:
    status, request_id = chat(gateway, "fallback")
    assert status == 200
    assert access_line(gateway, request_id)["tried"] == [
        {"target": "mock/fault-500", "status": 500, "kind": "http_500"},
        {"target": "mock/gpt-4o-mini", "status": 200},
    ]


def test_the_access_log_lists_every_failed_target_when_none_answered(gateway: Gateway) -> None:
    status, request_id = chat(gateway, "allfail")
    assert status == 503
    assert access_line(gateway, request_id)["tried"] == [
        {"target": "mock/fault-500", "status": 500, "kind": "http_500"},
        {"target": "mock/fault-503", "status": 503, "kind": "http_503"},
    ]


def test_a_forward_route_logs_the_providers_it_tried(gateway: Gateway) -> None:
    status, request_id = post(gateway, "/v1/rerank", {"model": "rerank-v3", "query": "q", "documents": ["d"]})
    assert status == 200
    assert access_line(gateway, request_id)["tried"] == [
        {"target": "down", "status": None, "kind": "connect"},
        {"target": "alt", "status": 200},
    ]


def test_a_plain_answer_logs_its_one_target(gateway: Gateway) -> None:
    status, request_id = chat(gateway, "mock/gpt-4o-mini")
    assert status == 200
    assert access_line(gateway, request_id)["tried"] == [{"target": "mock/gpt-4o-mini", "status": 200}]


def test_statsz_shows_each_agents_strategy_and_last_choices(gateway: Gateway) -> None:
    for _ in range(10):
        assert chat(gateway, "fallback")[0] == 200
    strategies = json.loads(gateway.get("/statsz")[2])["strategies"]
    assert strategies["fallback"]["strategy"] == "fallback"
    assert strategies["fallback"]["last_choices"] == ["mock/fault-500"] * 8  # a bounded ring
    assert strategies["allfail"]["strategy"] == "fallback"


def test_metrics_count_fallbacks_by_agent_and_outcome(gateway: Gateway) -> None:
    answered = 'gateway_fallbacks_total{agent="fallback",outcome="answered_after_fallback"}'
    failed = 'gateway_fallbacks_total{agent="allfail",outcome="all_failed"}'
    first = 'gateway_fallbacks_total{agent="fast",outcome="answered_after_fallback"}'
    before = [metric(gateway.metrics(), series) for series in (answered, failed, first)]
    assert chat(gateway, "fallback")[0] == 200
    assert chat(gateway, "allfail")[0] == 503
    assert chat(gateway, "fast")[0] == 200
    after = [metric(gateway.metrics(), series) for series in (answered, failed, first)]
    assert after == [before[0] + 1, before[1] + 1, before[2]]
