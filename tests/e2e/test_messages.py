"""Both SDKs against both provider formats, streaming and not: what must survive conversion.

The Anthropic SDK talks to /v1/messages and the OpenAI SDK to /v1/chat/completions; each is
served once by an OpenAI-format provider (`mock/...`) and once by an Anthropic-format one
(`claude/...`). The SDKs' own stream accumulators must give what the plain answer gives.
"""

from __future__ import annotations

import base64
import json

import anthropic
import openai
import pytest

from tests.support import CLIENT_TOKEN, Gateway, Mock, estimating_count_tokens_gateway

PROVIDERS = {"openai-format": "mock/gpt-4o-mini", "anthropic-format": "claude/claude-sonnet-4-5"}
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)).decode()
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}},
    {"name": "get_time", "description": "Time", "input_schema": {"type": "object"}},
]
OPENAI_TOOLS = [{"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
                for t in ANTHROPIC_TOOLS]


def claude(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_TOKEN, max_retries=0)


def anthropic_both(gateway: Gateway, **kw: object) -> tuple[anthropic.types.Message, anthropic.types.Message]:
    """The plain answer and the streamed one, accumulated by the SDK."""
    client = claude(gateway)
    plain = client.messages.create(**kw)
    with client.messages.stream(**kw) as stream:
        streamed = stream.get_final_message()
    return plain, streamed


def openai_both(gateway: Gateway, **kw: object) -> tuple[dict, dict]:
    """The plain message and the streamed chunks reassembled: content, tool calls, finish reason."""
    client = gateway.openai()
    plain = client.chat.completions.create(**kw)
    message = plain.choices[0].message
    as_dict = {
        "content": message.content,
        "tool_calls": [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []],
        "finish_reason": plain.choices[0].finish_reason,
    }
    content, calls, finish = None, {}, None
    for chunk in client.chat.completions.create(stream=True, **kw):
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                content = (content or "") + delta.content
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
            finish = choice.finish_reason or finish
    streamed = {
        "content": content,
        "tool_calls": [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())],
        "finish_reason": finish,
    }
    return as_dict, streamed


def _blocks(message: anthropic.types.Message) -> list[tuple]:
    return [(b.type, getattr(b, "text", None), getattr(b, "name", None), getattr(b, "input", None))
            for b in message.content]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_client_text(gateway: Gateway, provider: str) -> None:
    plain, streamed = anthropic_both(gateway, model=PROVIDERS[provider], max_tokens=100, system="Be brief.",
                                     messages=[{"role": "user", "content": "hi there"}])
    assert plain.content[0].text.endswith("You said: hi there")
    assert plain.stop_reason == streamed.stop_reason == "end_turn"
    assert _blocks(plain) == _blocks(streamed)
    assert plain.model == streamed.model
    assert plain.usage.output_tokens > 0 and streamed.usage.output_tokens == plain.usage.output_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_client_text(gateway: Gateway, provider: str) -> None:
    plain, streamed = openai_both(gateway, model=PROVIDERS[provider],
                                  messages=[{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "hi there"}])
    assert plain["content"].endswith("You said: hi there")
    assert plain == streamed and plain["finish_reason"] == "stop"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_client_parallel_tools(gateway: Gateway, provider: str) -> None:
    plain, streamed = anthropic_both(gateway, model=PROVIDERS[provider] + "-tools", max_tokens=200,
                                     tools=ANTHROPIC_TOOLS, tool_choice={"type": "any"},
                                     messages=[{"role": "user", "content": "weather and time?"}])
    tools = [(b.name, b.input) for b in plain.content if b.type == "tool_use"]
    assert tools == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]
    assert plain.stop_reason == streamed.stop_reason == "tool_use"
    assert _blocks(plain) == _blocks(streamed)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_client_parallel_tools(gateway: Gateway, provider: str) -> None:
    plain, streamed = openai_both(gateway, model=PROVIDERS[provider] + "-tools", tools=OPENAI_TOOLS,
                                  tool_choice="required", messages=[{"role": "user", "content": "weather?"}])
    assert plain["tool_calls"] == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]
    assert plain == streamed and plain["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_client_tool_result_turn(gateway: Gateway, mock: Mock, provider: str) -> None:
    messages = [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {"tz": "UTC"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "clock broken", "is_error": True},
            {"type": "text", "text": "summarise"}]},
    ]
    plain, streamed = anthropic_both(gateway, model=PROVIDERS[provider], max_tokens=100, tools=ANTHROPIC_TOOLS,
                                     messages=messages)
    assert plain.stop_reason == "end_turn" and _blocks(plain) == _blocks(streamed)
    sent = json.loads(mock.requests()[-1]["body"])
    if provider == "openai-format":
        tool_messages = [m for m in sent["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_messages] == ["toolu_1", "toolu_2"]
        assert "clock broken" in tool_messages[1]["content"]
    else:
        assert sent["messages"] == messages


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_client_tool_result_turn(gateway: Gateway, mock: Mock, provider: str) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
    ]
    plain, streamed = openai_both(gateway, model=PROVIDERS[provider], tools=OPENAI_TOOLS, messages=messages)
    assert plain == streamed and plain["finish_reason"] == "stop"
    sent = json.loads(mock.requests()[-1]["body"])
    if provider == "anthropic-format":
        results = sent["messages"][-1]["content"]
        assert [(r["type"], r["tool_use_id"]) for r in results] == [("tool_result", "call_1"), ("tool_result", "call_2")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_tokens_stop(gateway: Gateway, provider: str) -> None:
    plain, streamed = anthropic_both(gateway, model=PROVIDERS[provider], max_tokens=3,
                                     messages=[{"role": "user", "content": "a long story please"}])
    assert plain.stop_reason == streamed.stop_reason == "max_tokens"
    oa_plain, oa_streamed = openai_both(gateway, model=PROVIDERS[provider], max_tokens=3,
                                        messages=[{"role": "user", "content": "a long story please"}])
    assert oa_plain == oa_streamed and oa_plain["finish_reason"] == "length"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_images_reach_the_provider(gateway: Gateway, mock: Mock, provider: str) -> None:
    claude(gateway).messages.create(model=PROVIDERS[provider], max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "text", "text": "what is this?"}]}])
    sent = json.dumps(json.loads(mock.requests()[-1]["body"]))
    assert PIXEL in sent
    gateway.openai().chat.completions.create(model=PROVIDERS[provider], messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
        {"type": "text", "text": "and this?"}]}])
    assert "https://example.invalid/cat.png" in mock.requests()[-1]["body"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_reach_each_client_in_its_shape(gateway: Gateway, provider: str, stream: bool) -> None:
    model = PROVIDERS[provider] + "-fault-400"
    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        claude(gateway).messages.create(model=model, max_tokens=10, stream=stream,
                                        messages=[{"role": "user", "content": "x"}])
    assert anthropic_error.value.body["type"] == "error"
    with pytest.raises(openai.BadRequestError) as openai_error:
        gateway.openai().chat.completions.create(model=model, stream=stream,
                                                 messages=[{"role": "user", "content": "x"}])
    assert openai_error.value.body["type"] == "invalid_request_error"


def test_anthropic_auth_errors_are_anthropic_shaped(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude/x", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                            "message": "invalid API key"}}


def test_native_anthropic_passes_version_and_beta(gateway: Gateway, mock: Mock) -> None:
    client = claude(gateway)
    client.messages.create(model="claude/claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                           extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    headers = mock.requests()[-1]["headers"]
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["x-api-key"].startswith("sk-test-provider")
    assert "authorization" not in headers


def test_count_tokens_native(gateway: Gateway, mock: Mock) -> None:
    count = claude(gateway).messages.count_tokens(model="claude-sonnet-4-5",
                                                   messages=[{"role": "user", "content": "hello " * 40}])
    assert count.input_tokens > 0
    assert mock.requests()[-1]["path"] == "/v1/messages/count_tokens"


def test_count_tokens_estimated_without_an_anthropic_provider(tmp_path, mock: Mock) -> None:  # noqa: ANN001
    gateway = estimating_count_tokens_gateway(mock, tmp_path)
    try:
        count = claude(gateway).messages.count_tokens(
            model="any", system="You are terse.", messages=[{"role": "user", "content": "x" * 400}]
        )
        assert 100 <= count.input_tokens <= 110
    finally:
        gateway.stop()
