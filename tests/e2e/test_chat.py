"""POST /v1/chat/completions through the gateway, with the official OpenAI SDK as the client."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, write_config

MESSAGES = [{"role": "user", "content": "hi there"}]


def _last_request(mock: Mock, model: str) -> dict:
    return [r for r in mock.requests() if model in (r.get("body") or "")][-1]


def test_completion_through_an_agent(gateway: Gateway, mock: Mock) -> None:
    answer = gateway.openai().chat.completions.create(model="fast", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello from mock gpt-4o-mini! You said: hi there"
    assert answer.usage is not None and answer.usage.completion_tokens == 8
    sent = _last_request(mock, "gpt-4o-mini")
    assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert json.loads(sent["body"])["model"] == "gpt-4o-mini"


def test_completion_by_provider_and_model(gateway: Gateway) -> None:
    answer = gateway.openai().chat.completions.create(model="mock/gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from mock gpt-4o!")


def test_stream_arrives_incrementally(gateway: Gateway) -> None:
    started = time.monotonic()
    stream = gateway.openai().chat.completions.create(
        model="mock/gpt-delay-80",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals, text, usage = [], "", None
    for chunk in stream:
        arrivals.append(time.monotonic() - started)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "Hello from mock gpt-delay-80! You said: hi there"
    assert usage is not None and usage.prompt_tokens == 2
    # Eleven events, 80 ms apart upstream: the first must reach the client long before the last
    # was sent, i.e. nothing buffers the stream. (An ordering check, not a performance bound.)
    assert len(arrivals) >= 10
    assert arrivals[-1] - arrivals[0] > 0.5


def test_stream_follows_upstream_content_type_not_flag(gateway: Gateway) -> None:
    """stream absent → one JSON object; the answer's shape follows what the upstream sent."""
    status, headers, body = gateway.request(
        "POST", "/v1/chat/completions", json.dumps({"model": "fast", "messages": MESSAGES}).encode()
    )
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["object"] == "chat.completion"


@pytest.mark.parametrize("agent", ["fallback", "refused", "empty", "hang"])
def test_fallback_walks_to_the_next_target(gateway: Gateway, agent: str) -> None:
    answer = gateway.openai().chat.completions.create(model=agent, messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from mock gpt-4o-mini!")


def test_fallback_streaming(gateway: Gateway) -> None:
    stream = gateway.openai().chat.completions.create(model="fallback", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Hello from mock gpt-4o-mini!")


def test_non_retryable_upstream_error_is_not_walked_past(gateway: Gateway) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        gateway.openai().chat.completions.create(model="badreq", messages=MESSAGES)
    assert caught.value.status_code == 422


def test_a_prompt_too_long_for_one_target_is_tried_on_the_next(gateway: Gateway) -> None:
    """The mock's 400 is OpenAI's context_length_exceeded: another target may have the room."""
    answer = gateway.openai().chat.completions.create(model="toolong", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from mock gpt-4o-mini!")


def test_rate_limited_everywhere_gives_429_with_retry_after(gateway: Gateway) -> None:
    status, headers, body = gateway.request(
        "POST", "/v1/chat/completions", json.dumps({"model": "limited", "messages": MESSAGES}).encode()
    )
    assert status == 429
    assert headers["retry-after"] == "1"
    assert json.loads(body)["error"]["type"] == "rate_limit_error"


def test_all_targets_failing_gives_a_gateway_error(gateway: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="allfail", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert "all 2 targets failed" in caught.value.message


def test_provider_rejecting_our_key_is_not_blamed_on_the_client(gateway: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="badkey", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert PROVIDER_KEY not in str(caught.value.body)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": []}', 400, "'model' is required"),
        (b'{"model": 7, "messages": []}', 400, "'model' is required"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "nope"),
        (b'{"model": "unknown-provider/x", "messages": [{"role": "user", "content": "x"}]}', 404, "unknown-provider/x"),
    ],
)
def test_bad_requests_get_openai_errors(gateway: Gateway, body: bytes, status: int, fragment: str) -> None:
    got, headers, answer = gateway.request("POST", "/v1/chat/completions", body)
    assert got == status
    error = json.loads(answer)["error"]
    assert fragment in error["message"] and error["type"]
    # The gateway still serves afterwards.
    assert gateway.openai().chat.completions.create(model="fast", messages=MESSAGES).choices


def test_missing_or_wrong_token_is_401(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        gateway.openai(token="wrong-token").chat.completions.create(model="fast", messages=MESSAGES)
    status, _, body = gateway.request("POST", "/v1/chat/completions", b"{}", {"Authorization": None})
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"


def test_unknown_route_and_wrong_method(gateway: Gateway) -> None:
    status, _, body = gateway.get("/v1/nothing-here")
    assert status == 404 and "error" in json.loads(body)
    status, headers, body = gateway.get("/v1/chat/completions")
    assert status == 405 and headers["allow"] == "POST"


def test_client_disconnect_cancels_the_upstream(gateway: Gateway, mock: Mock) -> None:
    model = "mock/gpt-delay-300-disconnect"
    stream = gateway.openai().chat.completions.create(model=model, messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        sent = _last_request(mock, "gpt-delay-300-disconnect")
        if sent["disconnected"]:
            break
        time.sleep(0.05)
    assert sent["disconnected"] and not sent["finished"]


def test_upstream_cut_mid_stream_ends_with_an_error_event(gateway: Gateway) -> None:
    stream = gateway.openai().chat.completions.create(
        model="mock/gpt-fault-cut", messages=MESSAGES, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received, "the events sent before the cut reach the client"
    assert "failed mid-stream" in str(caught.value)


def test_upstream_cut_raw_stream_is_well_formed(gateway: Gateway) -> None:
    body = json.dumps({"model": "mock/gpt-fault-cut", "messages": MESSAGES, "stream": True}).encode()
    status, _, raw = gateway.request("POST", "/v1/chat/completions", body)
    assert status == 200
    events = raw.decode().split("\n\n")
    assert events[-1] == ""
    for event in events[:-1]:
        assert event.startswith("data: ")
        json.loads(event[6:])
    assert "error" in json.loads(events[-2][6:])


@pytest.mark.parametrize("asked", [False, True])
def test_a_native_stream_is_counted_whether_or_not_its_client_asked_for_usage(gateway: Gateway,
                                                                               asked: bool) -> None:
    """The gateway asks an OpenAI provider for a stream's usage chunk, so its tokens are counted
    (and charged to a budget) even when the client did not ask; that client's stream has no
    usage chunk, as it would not have had without the gateway. Before, such a stream counted
    no token at all: a budget never saw it."""
    model = f"mock/gpt-usage-{'asked' if asked else 'unasked'}"
    extra = {"stream_options": {"include_usage": True}} if asked else {}
    chunks = list(gateway.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "count me"}], stream=True, **extra))
    assert any(c.usage is not None for c in chunks) is asked
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    counted = json.loads(gateway.get("/statsz")[2])["models"][model]
    assert counted["input_tokens"] > 0 and counted["output_tokens"] > 0


NO_STREAM_USAGE = """
version: 1
server:
  listen: 127.0.0.1:${GATEWAY_PORT}
secrets: secrets.yaml
providers:
  plain:
    url: ${MOCK_URL}/v1
    api_key: sk-test-plain
    stream_usage: false
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: GET /healthz, handler: health}
"""


def test_a_provider_that_refuses_stream_options_is_not_sent_them(mock: Mock, tmp_path) -> None:
    """`stream_usage: false`: the request goes as the client wrote it (its stream counts no
    tokens then); a client's own include_usage still reaches the provider."""
    config = write_config(tmp_path, NO_STREAM_USAGE, f"client_token: {CLIENT_TOKEN}\n")
    gateway = Gateway(config, env={"MOCK_URL": mock.url})
    try:
        for asked in (False, True):
            model = f"plain/gpt-nostreamusage-{asked}"
            extra = {"stream_options": {"include_usage": True}} if asked else {}
            chunks = list(gateway.openai().chat.completions.create(
                model=model, messages=MESSAGES, stream=True, **extra))
            assert any(c.usage is not None for c in chunks) is asked
            sent = json.loads(_last_request(mock, model.partition("/")[2])["body"])
            assert ("stream_options" in sent) is asked
    finally:
        assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()
