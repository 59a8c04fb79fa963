"""Retry policy end to end: a real gateway of its own in front of the mock provider's fault scripts.

An agent with `retry: {attempts: 3}` gets its answer from the same target after two 503s; a
forward route retries a buffered body but never replays a streamed one; a walk past its
`deadline` answers 504 in the client's shape. Back-off is a few milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, write_config

ROUTES = f"""
version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
  drain_timeout: 5s
secrets: secrets.yaml
retry: {{backoff: {{base: 1ms, cap: 5ms}}}}
providers:
  mock:
    url: ${{MOCK_URL}}/v1
    api_key: {PROVIDER_KEY}
agents:
  thrice: {{models: [mock/gpt-retry-thrice], retry: {{attempts: 3}}}}
  once: {{models: [mock/gpt-retry-once]}}
  hurried: {{models: [mock/gpt-retry-hurried], retry: {{attempts: 3, deadline: 200ms}}}}
  hurried-too: {{models: [mock/gpt-retry-hurried-too], retry: {{attempts: 3, deadline: 200ms}}}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - {{match: POST /v1/messages, handler: chat, ingress: anthropic}}
  - {{match: POST /v1/embeddings, handler: forward, providers: [mock], retry: {{attempts: 3}}}}
  - {{match: POST /v1/audio/transcriptions, handler: forward, providers: [mock], body: stream,
      retry: {{attempts: 3}}}}
  - {{match: GET /healthz, handler: health}}
"""
MESSAGES = [{"role": "user", "content": "hi"}]
BOUNDARY = "----gateway-retry-boundary"


@pytest.fixture
def gateway(mock: Mock, tmp_path: Path) -> Iterator[Gateway]:
    config = write_config(tmp_path, ROUTES, f"client_token: {CLIENT_TOKEN}\n")
    process = Gateway(config, env={"MOCK_URL": mock.url})
    mock.clear_faults()
    yield process
    mock.clear_faults()
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


def chat(gateway: Gateway, model: str, path: str = "/v1/chat/completions") -> tuple[int, dict]:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 20}
    status, _, raw = gateway.request("POST", path, json.dumps(body).encode())
    return status, json.loads(raw)


def test_an_agent_retries_the_same_target_until_it_recovers(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("gpt-retry-thrice", fail=2, status=503)
    status, answer = chat(gateway, "thrice")
    assert status == 200, answer
    assert mock.seen("gpt-retry-thrice") == 3


def test_without_a_policy_an_agent_tries_its_target_once(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("gpt-retry-once", fail=2, status=503)
    assert chat(gateway, "once")[0] == 503
    assert mock.seen("gpt-retry-once") == 1


def test_a_forward_route_retries_a_buffered_body(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("emb-retry", fail=2, status=503)
    answer = gateway.openai().embeddings.create(model="emb-retry", input="x")
    assert len(answer.data) == 1
    assert mock.seen("emb-retry") == 3


def test_a_streamed_body_is_never_replayed(gateway: Gateway, mock: Mock) -> None:
    mock.script_fault("whisper-retry", fail=2, status=503)
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-retry\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        f"Content-Type: audio/wav\r\n\r\nRIFF0000\r\n--{BOUNDARY}--\r\n"
    ).encode()
    status, _, _ = gateway.request("POST", "/v1/audio/transcriptions", body,
                                   {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert status == 503  # the provider's own answer, relayed: the body was consumed
    assert mock.seen("whisper-retry") == 1


# An agent (and model) per case: the first case's try, cut at its deadline, may reach a loaded mock
# only after the second case has scripted its fault, and must not be counted there.
@pytest.mark.parametrize(("path", "shape", "agent"), [("/v1/chat/completions", "openai", "hurried"),
                                                      ("/v1/messages", "anthropic", "hurried-too")])
def test_a_walk_past_its_deadline_answers_504_in_the_clients_shape(
    gateway: Gateway, mock: Mock, path: str, shape: str, agent: str
) -> None:
    model = f"gpt-retry-{agent}"
    mock.script_fault(model, first_byte_delay_ms=3000, times=1)
    status, answer = chat(gateway, agent, path)
    assert status == 504, answer
    if shape == "openai":
        assert "retry deadline" in answer["error"]["message"]
    else:
        assert answer["type"] == "error" and "retry deadline" in answer["error"]["message"]
    assert mock.seen(model) == 1  # cut at the deadline: no second try
