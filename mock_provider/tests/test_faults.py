"""Fault scripting: the model-name selectors and what each puts on the wire."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from mock_provider import parse_model
from mock_provider.tests.helpers import MSGS, Mock


def test_parse_model_selectors() -> None:
    b = parse_model("gpt-delay-50-tools")
    assert (b.delay_ms, b.tools, b.fault) == (50.0, True, None)
    assert parse_model("x-fault-429").fault_status == 429
    assert parse_model("x-fault-slowheaders-fault-cut").slow_headers
    assert parse_model("x-fault-slowheaders-fault-cut").fault == "cut"
    assert parse_model("claude-sonnet-4-5") == parse_model("plain")
    assert parse_model("x-fault-bogus").fault is None


FAULTS = [
    (400, openai.BadRequestError, anthropic.BadRequestError, "invalid_request_error"),
    (401, openai.AuthenticationError, anthropic.AuthenticationError, "authentication_error"),
    (429, openai.RateLimitError, anthropic.RateLimitError, "rate_limit_error"),
    (500, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    (502, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    (503, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    (529, openai.InternalServerError, anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "oai_exc", "ant_exc", "ant_type"), FAULTS)
def test_fault_status(mock: Mock, status: int, oai_exc: type[Exception],
                      ant_exc: type[Exception], ant_type: str) -> None:
    with pytest.raises(oai_exc) as ei:
        mock.openai().chat.completions.create(model=f"gpt-fault-{status}", messages=MSGS)
    resp = ei.value.response  # type: ignore[attr-defined]
    assert resp.status_code == status
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    if status == 429:
        assert err["type"] == "rate_limit_error" and resp.headers["retry-after"] == "1"
    with pytest.raises(ant_exc) as ai:
        mock.anthropic().messages.create(
            model=f"c-fault-{status}", max_tokens=10, messages=MSGS, stream=status == 429)
    resp = ai.value.response  # type: ignore[attr-defined]
    assert resp.status_code == status
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == ant_type
    assert body["error"]["message"]
    if status == 429:
        assert resp.headers["retry-after"] == "1"


def test_fault_cut(mock: Mock) -> None:
    oc, ac = mock.openai(), mock.anthropic()
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        for c in oc.chat.completions.create(model="gpt-fault-cut", messages=MSGS, stream=True):
            got.append(c)
    assert len(got) == 2
    with pytest.raises(openai.APIConnectionError):
        oc.chat.completions.create(model="gpt-fault-cut", messages=MSGS)
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        list(ac.messages.create(model="c-fault-cut", max_tokens=10, messages=MSGS, stream=True))
    with pytest.raises(anthropic.APIConnectionError):
        ac.messages.create(model="c-fault-cut", max_tokens=10, messages=MSGS)


def test_fault_stream_error_event(mock: Mock) -> None:
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(mock.openai().chat.completions.create(
            model="gpt-fault-streamerror", messages=MSGS, stream=True))
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(mock.anthropic().messages.create(
            model="c-fault-streamerror", max_tokens=10, messages=MSGS, stream=True))


def test_fault_empty(mock: Mock) -> None:
    resp, body = mock.raw("/v1/chat/completions", {"model": "x-fault-empty", "messages": MSGS})
    assert (resp.status, body, resp.getheader("Content-Type")) == (200, b"", "application/json")


def test_fault_hang_and_slowheaders(mock: Mock) -> None:
    mock.clear()
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.3).chat.completions.create(model="x-fault-hang", messages=MSGS)
    with pytest.raises(openai.APITimeoutError):
        mock.openai(timeout=0.3).chat.completions.create(
            model="x-fault-slowheaders", messages=MSGS)
    t0 = time.monotonic()
    r = mock.openai(timeout=5).chat.completions.create(model="x-fault-slowheaders", messages=MSGS)
    assert time.monotonic() - t0 >= 1.9
    assert r.choices[0].message.content
    log = mock.requests()
    assert [e["disconnected"] for e in log][:1] == [True]
    assert log[0]["finished"] is False



def test_delay_header_and_default(mock: Mock) -> None:
    t0 = time.monotonic()
    mock.raw("/v1/chat/completions", {"model": "x", "messages": MSGS, "stream": True},
             {"x-mock-delay-ms": "40"})
    assert time.monotonic() - t0 >= 0.3  # 11 events, 10 gaps of 40 ms
    t0 = time.monotonic()
    mock.raw("/v1/chat/completions", {"model": "x", "messages": MSGS, "stream": True})
    assert time.monotonic() - t0 < 0.3
