"""Hedging and held stream starts end to end: a real gateway of its own in front of the mock.

An agent with `hedge_after` tries its next target beside a first one that has sent nothing
yet; the first answer wins and the other transfer is cancelled (the mock sees the
disconnect). A stream that answers 200 and then only an error event, or nothing, before
its first content is a failure before the first byte: the walk goes on, and a lone target's
client gets an error status rather than a 200 with an error inside.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.support import CLIENT_TOKEN, Gateway, Mock, access_line, metric, own_gateway

ROUTES = """
retry: {backoff: {base: 1ms, cap: 5ms}}
agents:
  hedged: {models: [mock/gpt-hedge-slow, mock/gpt-hedge-fast], hedge_after: 100ms}
  early: {models: [mock/gpt-early, mock/gpt-later]}
  claude-pair: {models: [claude/claude-early, claude/claude-later]}
  again: {models: [mock/gpt-again], retry: {attempts: 2}}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/messages, handler: chat, ingress: anthropic}
  - {match: GET /metrics, handler: metrics}
  - {match: GET /healthz, handler: health}
"""
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with own_gateway(mock, tmp_path_factory.mktemp("hedging"), ROUTES) as process:
        yield process


@pytest.fixture(autouse=True)
def clean(mock: Mock) -> Iterator[None]:
    mock.clear_faults()
    mock.clear()
    yield
    mock.clear_faults()


def post(gateway: Gateway, document: dict[str, Any], path: str = "/v1/chat/completions") -> tuple[int, bytes, str]:
    request_id = uuid.uuid4().hex
    status, _, body = gateway.request("POST", path, json.dumps(document).encode(), {"x-request-id": request_id})
    return status, body, request_id


def requests_for(mock: Mock, model: str) -> list[dict[str, Any]]:
    return [r for r in mock.requests() if json.loads(r.get("body") or "{}").get("model") == model]


def disconnected(mock: Mock, model: str, timeout: float = 5.0) -> bool:
    """Whether the mock saw the gateway drop its request for `model` (it notices on its side)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("disconnected") for r in requests_for(mock, model)):
            return True
        time.sleep(0.02)
    return False


def test_a_hedge_answers_while_the_slow_target_is_cancelled(gateway: Gateway, mock: Mock) -> None:
    metrics = gateway.metrics()
    started = metric(metrics, 'gateway_hedges_total{outcome="started"}')
    won = metric(metrics, 'gateway_hedges_total{outcome="hedge_answered"}')
    mock.script_fault("gpt-hedge-slow", first_byte_delay_ms=10_000, times=1)
    status, body, request_id = post(gateway, {"model": "hedged", "messages": MESSAGES})
    assert status == 200, body
    assert "gpt-hedge-fast" in json.loads(body)["choices"][0]["message"]["content"]
    assert disconnected(mock, "gpt-hedge-slow")
    assert [t["target"] for t in access_line(gateway, request_id)["tried"]] == ["mock/gpt-hedge-fast"]
    metrics = gateway.metrics()
    assert metric(metrics, 'gateway_hedges_total{outcome="started"}') == started + 1
    assert metric(metrics, 'gateway_hedges_total{outcome="hedge_answered"}') == won + 1


def test_a_streamed_hedge_relays_only_the_winner(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("gpt-hedge-slow", first_byte_delay_ms=10_000, times=1)
    stream = gateway.openai().chat.completions.create(model="hedged", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "gpt-hedge-fast" in text and "gpt-hedge-slow" not in text
    assert disconnected(mock, "gpt-hedge-slow")


def test_a_target_answering_in_time_is_not_hedged(gateway: Gateway, mock: Mock) -> None:
    status, body, _ = post(gateway, {"model": "hedged", "messages": MESSAGES})
    assert status == 200, body
    assert mock.seen("gpt-hedge-fast") == 0


def test_the_slow_target_still_wins_when_it_answers_first(gateway: Gateway, mock: Mock) -> None:
    """Both slow: the first that answers serves the client, the other is cancelled."""
    mock.script_fault("gpt-hedge-slow", first_byte_delay_ms=300, times=1)
    mock.script_fault("gpt-hedge-fast", first_byte_delay_ms=10_000, times=1)
    status, body, _ = post(gateway, {"model": "hedged", "messages": MESSAGES})
    assert status == 200, body
    assert "gpt-hedge-slow" in json.loads(body)["choices"][0]["message"]["content"]
    assert disconnected(mock, "gpt-hedge-fast")


def test_a_stream_with_only_an_error_event_walks_on(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("gpt-early", stream="error", times=1)
    request_id = uuid.uuid4().hex
    stream = gateway.openai().chat.completions.create(
        model="early", messages=MESSAGES, stream=True, extra_headers={"x-request-id": request_id})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "gpt-later" in text
    assert access_line(gateway, request_id)["tried"] == [
        {"target": "mock/gpt-early", "status": 500, "kind": "http_500"},
        {"target": "mock/gpt-later", "status": 200},
    ]


def test_a_stream_that_ends_before_any_content_walks_on(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("gpt-early", stream="empty", times=1)
    request_id = uuid.uuid4().hex
    stream = gateway.openai().chat.completions.create(
        model="early", messages=MESSAGES, stream=True, extra_headers={"x-request-id": request_id})
    assert "gpt-later" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert access_line(gateway, request_id)["tried"][0] == {
        "target": "mock/gpt-early", "status": 200, "kind": "empty"}


def test_an_anthropic_overloaded_event_walks_on_for_an_anthropic_client(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("claude-early", stream="error", times=1)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_TOKEN, max_retries=0)
    with client.messages.stream(model="claude-pair", max_tokens=20, messages=MESSAGES) as stream:
        assert "claude-later" in "".join(stream.text_stream)
    assert mock.seen("claude-early") == 1


def test_a_lone_target_whose_stream_fails_before_content_gets_an_error_status(
    gateway: Gateway, mock: Mock
) -> None:
    mock.script_fault("gpt-early", stream="error", times=1)
    with pytest.raises(openai.InternalServerError) as raised:
        list(gateway.openai().chat.completions.create(model="mock/gpt-early", messages=MESSAGES, stream=True))
    assert raised.value.status_code == 502
    mock.script_fault("claude-early", stream="error", times=1)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_TOKEN, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as failed:
        client.messages.create(model="claude/claude-early", max_tokens=20, messages=MESSAGES, stream=True)
    assert failed.value.status_code == 503
    assert failed.value.body["type"] == "error"


def test_retries_are_counted_by_outcome(gateway: Gateway, mock: Mock) -> None:
    series = 'gateway_retries_total{outcome="answered",provider="mock"}'
    before = metric(gateway.metrics(), series)
    mock.script_fault("gpt-again", fail=1, status=503)
    assert post(gateway, {"model": "again", "messages": MESSAGES})[0] == 200
    assert metric(gateway.metrics(), series) == before + 1
