"""A provider's `idle_timeout`: the longest silence of the upstream, apart from `timeout`, the
whole-transfer limit.

One gateway for the module, whose providers wait at most 300 ms (or 1 s) for the upstream's
next bytes while their whole-transfer limits are long. Each test would hang, or meet the
client's own read timeout, if the idle timeout did not fire (or fired where it must not).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from mock_provider import filler_text
from tests.e2e.test_backpressure import SlowReader
from tests.support import CLIENT_TOKEN, OWN_ROUTES, PROVIDER_KEY, Gateway, Mock, write_config

ROUTES = OWN_ROUTES.replace("  drain_timeout: 5s\n", "  drain_timeout: 5s\n  write_buffer: 256KiB\n") + f"""\
  quiet: {{url: "${{MOCK_URL}}/v1", api_key: {PROVIDER_KEY}, idle_timeout: 300ms, timeout: 60s}}
  quietclaude: {{url: "${{MOCK_URL}}/v1", format: anthropic, api_key: {PROVIDER_KEY}, idle_timeout: 300ms,
                timeout: 60s}}
  steady: {{url: "${{MOCK_URL}}/v1", api_key: {PROVIDER_KEY}, idle_timeout: 1s, timeout: 60s}}
  brief: {{url: "${{MOCK_URL}}/v1", api_key: {PROVIDER_KEY}, idle_timeout: 1s, timeout: 2s}}
agents:
  chain: {{models: [quiet/gpt-4o-mini-fault-hang, mock/gpt-4o-mini]}}
  lone: {{models: [quiet/gpt-4o-mini-fault-hang]}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - {{match: POST /v1/messages, handler: chat, ingress: anthropic}}
  - {{match: "ANY /proxy/{{provider}}/{{path*}}", handler: passthrough}}
  - {{match: GET /metrics, handler: metrics}}
  - {{match: GET /healthz, handler: health}}
"""
MESSAGES = [{"role": "user", "content": "hi"}]
STALL_S = 1.5  # a client that stops reading this long: five times the 300 ms idle timeout
# 30 events 100 ms apart: 3 s in all, longer than `brief`'s whole 2 s and thrice the idle 1 s.
TRICKLE = "gpt-big-30-piece-1-delay-100"


@pytest.fixture(scope="module")
def idle(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = write_config(tmp_path_factory.mktemp("idle"), ROUTES, f"client_token: {CLIENT_TOKEN}\n")
    gateway = Gateway(config, env={"MOCK_URL": mock.url})
    yield gateway
    assert gateway.stop() == 0, gateway.log()
    assert "Traceback" not in gateway.log(), gateway.log()


def _client(gateway: Gateway) -> openai.OpenAI:
    return gateway.openai(timeout=15)  # far past any idle timeout here: a miss fails, never hangs


def test_a_stream_that_stalls_mid_way_ends_with_an_idle_timeout_error_event(idle: Gateway, mock: Mock) -> None:
    mock.script_fault("gpt-stall-openai", stream="stall", times=1)
    stream = _client(idle).chat.completions.create(model="quiet/gpt-stall-openai", messages=MESSAGES,
                                                   stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert any(c.choices and c.choices[0].delta.content for c in received), "content before the stall"
    message = str(caught.value)
    assert "failed mid-stream" in message and "0.3s (idle_timeout)" in message, message
    assert 'gateway_upstream_errors_total{kind="timeout",provider="quiet"}' in idle.metrics()


def test_an_anthropic_stream_that_stalls_ends_with_an_anthropic_error_event(idle: Gateway, mock: Mock) -> None:
    mock.script_fault("claude-stall", stream="stall", times=1)
    client = anthropic.Anthropic(base_url=idle.url, api_key=CLIENT_TOKEN, max_retries=0, timeout=15)
    texts = []
    stream = client.messages.create(model="quietclaude/claude-stall", max_tokens=64, messages=MESSAGES,
                                    stream=True)
    with pytest.raises(anthropic.APIError) as caught:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)
    assert texts, "the text before the stall reaches the client"
    assert "0.3s (idle_timeout)" in str(caught.value), caught.value


def _trickle(gateway: Gateway, provider: str) -> tuple[str, openai.APIError | None]:
    text, error = [], None
    stream = _client(gateway).chat.completions.create(model=f"{provider}/{TRICKLE}", messages=MESSAGES,
                                                      stream=True)
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
    except openai.APIError as exc:
        error = exc
    return "".join(text), error


def test_a_stream_longer_than_the_idle_timeout_but_never_silent_that_long_completes(idle: Gateway) -> None:
    text, error = _trickle(idle, "steady")
    assert error is None, error
    assert text == filler_text(30 * 1024)


def test_timeout_still_bounds_the_whole_of_a_stream_that_is_never_idle(idle: Gateway) -> None:
    """`timeout` keeps its meaning, streams included: the limit on one transfer however steadily
    it moves; the error says so, and does not blame the idle timeout."""
    text, error = _trickle(idle, "brief")
    assert error is not None and 0 < len(text) < 30 * 1024
    message = str(error)
    assert "failed mid-stream" in message and "timed out" in message and "idle_timeout" not in message, message


def test_an_upstream_silent_before_its_first_byte_gives_way_to_the_next_target(idle: Gateway,
                                                                               mock: Mock) -> None:
    mock.clear()
    answer = _client(idle).chat.completions.create(model="chain", messages=MESSAGES)
    assert answer.choices[0].message.content
    hung = [e for e in mock.requests() if "fault-hang" in e.get("body", "")]
    assert hung and hung[-1]["disconnected"], hung


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_silent_target_is_a_504_in_the_clients_shape(idle: Gateway, stream: bool) -> None:
    body = json.dumps({"model": "lone", "messages": MESSAGES, "stream": stream}).encode()
    status, _, raw = idle.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {CLIENT_TOKEN}"})
    assert status == 504, raw
    error = json.loads(raw)["error"]
    assert error["code"] == "timeout" and "0.3s (idle_timeout)" in error["message"], error


def test_a_silent_upstream_behind_passthrough_is_a_504(idle: Gateway) -> None:
    body = json.dumps({"model": "gpt-4o-mini-fault-hang", "messages": MESSAGES}).encode()
    status, _, raw = idle.request("POST", "/proxy/quiet/chat/completions", body,
                                  {"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json"})
    assert status == 504, raw
    assert json.loads(raw)["error"]["code"] == "timeout", raw


def test_a_client_reading_slowly_is_not_mistaken_for_a_silent_upstream(idle: Gateway) -> None:
    """The gateway pauses the upstream while the client is behind: that pause, five times the
    idle timeout here, is not the upstream's silence."""
    kib = 8 * 1024  # far more than the write buffer and the sockets hold: the transfer is paused
    body = {"model": f"quiet/gpt-big-{kib}", "stream": True, "messages": MESSAGES}
    reader = SlowReader(idle.port, "POST", "/v1/chat/completions", body)
    time.sleep(STALL_S)
    status, answer = reader.rest()
    assert status == "HTTP/1.1 200 OK"
    events = answer.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""], events[-3:]
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == filler_text(kib * 1024)
