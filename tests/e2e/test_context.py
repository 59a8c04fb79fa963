"""The context-overflow guard end to end: a real gateway in front of the mock provider.

A prompt too long for a small-window target goes to the large one only; one too long for
every target gets 400 with the numbers, in the client's shape; an agent that trims drops its
oldest whole turns (tool calls stay with their results) and says how many; the estimate's
calibration converges on the mock's reported prompt tokens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import anthropic
import openai
import pytest

from limits.estimate import prompt_tokens
from tests.support import CLIENT_TOKEN, Gateway, Mock, access_line, own_gateway

ROUTES = """
models:
  gpt-registry-small: {context_window: 60}
agents:
  sized: {models: [mock/gpt-registry-small, {target: mock/gpt-large, context_window: 100000}]}
  cramped: {models: [{target: mock/gpt-small, context_window: 60}, {target: claude/claude-medium,
             context_window: 200, max_output: 100}]}
  trimmer: {models: [{target: mock/gpt-trim, context_window: 400}], overflow: {trim: {keep_last_turns: 2}}}
  calibrated: {models: [{target: mock/gpt-calib, context_window: 100000}]}
  unguarded: {models: [{target: mock/gpt-unguarded, context_window: 10}], overflow: {enabled: false}}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/messages, handler: chat, ingress: anthropic}
  - {match: GET /healthz, handler: health}
  - {match: GET /statsz, handler: statsz}
"""


@pytest.fixture(scope="module")
def gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with own_gateway(mock, tmp_path_factory.mktemp("context"), ROUTES) as process:
        yield process


def words(n: int) -> list[dict]:
    return [{"role": "user", "content": "word " * n}]


def test_a_long_prompt_goes_to_the_target_it_fits(gateway: Gateway, mock: Mock) -> None:
    request_id = uuid.uuid4().hex
    answer = gateway.openai().chat.completions.create(
        model="sized", messages=words(100), extra_headers={"x-request-id": request_id})
    assert "gpt-large" in answer.choices[0].message.content
    assert mock.seen("gpt-registry-small") == 0
    assert access_line(gateway, request_id)["tried"][0] == {
        "target": "mock/gpt-registry-small", "status": None, "kind": "context_overflow"}


def test_a_short_prompt_still_goes_to_the_first_target(gateway: Gateway) -> None:
    answer = gateway.openai().chat.completions.create(model="sized", messages=words(3), max_tokens=5)
    assert "gpt-registry-small" in answer.choices[0].message.content


def test_a_prompt_too_long_for_every_target_gets_400_with_the_numbers(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().chat.completions.create(model="cramped", messages=words(400))
    error = refused.value.body
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    message = error["message"]
    assert "context window 60" in message and "context window 200, max output 100" in message
    assert f"about {prompt_tokens({'messages': words(400)})} tokens" in message


def test_an_output_limit_below_the_request_counts_too(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().chat.completions.create(model="cramped", messages=words(3), max_tokens=150)
    assert "asks for up to 150 output tokens" in refused.value.body["message"]


def test_an_anthropic_client_gets_the_refusal_in_its_own_shape(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_TOKEN, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="cramped", max_tokens=10, messages=words(400))
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "context window 200" in refused.value.body["error"]["message"]


def test_trimming_drops_the_oldest_whole_turns_and_says_how_many(gateway: Gateway, mock: Mock) -> None:
    messages: list[dict] = [{"role": "system", "content": "You are terse."}]
    for turn in range(10):
        call = f"call_{turn}"
        messages += [
            {"role": "user", "content": f"turn {turn} " + "word " * 20},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call, "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}}]},
            {"role": "tool", "tool_call_id": call, "content": f"result {turn}"},
            {"role": "assistant", "content": f"answer {turn}"},
        ]
    mock.clear()
    raw = gateway.openai().chat.completions.with_raw_response.create(model="trimmer", messages=messages)
    dropped = int(raw.headers["x-gateway-trimmed-messages"])
    assert dropped > 0 and dropped % 4 == 0  # whole turns of four messages
    sent = json.loads(next(r for r in mock.requests() if r["path"] == "/v1/chat/completions")["body"])
    kept = sent["messages"]
    assert kept[0] == messages[0] and kept[1]["role"] == "user"
    assert kept == [messages[0], *messages[1 + dropped:]]
    assert prompt_tokens(sent) <= 400
    assert kept[-4]["content"].startswith("turn 9") and kept[-8]["content"].startswith("turn 8")


def test_the_calibration_converges_on_the_reported_prompt_tokens(gateway: Gateway) -> None:
    document = {"messages": words(200)}
    for _ in range(3):
        gateway.openai().chat.completions.create(model="calibrated", messages=document["messages"])
    ratio = json.loads(gateway.get("/statsz")[2])["context"]["calibration"]["gpt-calib"]
    assert ratio == pytest.approx(200 / prompt_tokens(document), abs=0.01)  # the mock counts words


def test_an_agent_may_turn_the_guard_off(gateway: Gateway) -> None:
    answer = gateway.openai().chat.completions.create(model="unguarded", messages=words(100))
    assert "gpt-unguarded" in answer.choices[0].message.content
