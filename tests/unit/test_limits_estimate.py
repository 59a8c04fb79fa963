"""The token estimate made before sending, and OpenAI's rate-limit header formats."""

from __future__ import annotations

import pytest

from limits.estimate import output_tokens, prompt_tokens, request_tokens
from limits.headers import duration_text, ratelimit_headers, retry_after_text


def test_text_counts_four_characters_a_token_plus_message_framing() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}]}
    assert prompt_tokens(body) == 3 + 4 + 100
    two = {"messages": [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 41}]}
    assert prompt_tokens(two) == 3 + 8 + 21  # 81 characters, rounded up


def test_openai_images_by_detail_and_base64_payloads_not_read_as_text() -> None:
    data_url = "data:image/png;base64," + "A" * 100_000

    def with_detail(detail: str | None) -> dict:
        image = {"url": data_url} if detail is None else {"url": data_url, "detail": detail}
        return {"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"},
                                                         {"type": "image_url", "image_url": image}]}]}

    assert prompt_tokens(with_detail("low")) == 3 + 4 + 1 + 85
    assert prompt_tokens(with_detail("high")) == prompt_tokens(with_detail(None)) == 3 + 4 + 1 + 765


def test_anthropic_shape_system_images_tools_and_tool_results() -> None:
    body = {
        "system": [{"type": "text", "text": "s" * 8, "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "get", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "Q" * 5000}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r" * 12}]},
        ],
    }
    tools = len('[{"name":"get","input_schema":{"type":"object"}}]')
    characters = 8 + tools + len("get") + len('{"city":"Paris"}') + 12
    assert prompt_tokens(body) == 3 + 3 * 4 + 1600 + -(-characters // 4)


def test_openai_tool_calls_and_results_count() -> None:
    body = {"messages": [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]}
    assert prompt_tokens(body) == 3 + 8 + -(-(3 + 16 + 5) // 4)


def test_hostile_shapes_cost_little_and_never_raise() -> None:
    deep: object = "x" * 4
    for _ in range(2000):
        deep = [deep]
    assert prompt_tokens({"messages": [{"role": "user", "content": deep}]}) == 3 + 4
    assert prompt_tokens({"messages": "not a list", "system": 7}) == 3
    assert prompt_tokens({}) == 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [({}, 1024), ({"max_tokens": 100}, 100), ({"max_completion_tokens": 5000}, 1024),
     ({"max_tokens": True}, 1024), ({"max_tokens": -3}, 1024), ({"max_tokens": "9"}, 1024)],
)
def test_output_reserve_is_the_requested_maximum_capped(body: dict, expected: int) -> None:
    assert output_tokens(body, 1024) == expected


def test_request_tokens_is_prompt_plus_reserve() -> None:
    body = {"messages": [{"role": "user", "content": "abcd"}], "max_tokens": 10}
    assert request_tokens(body, 1024) == 3 + 4 + 1 + 10


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0004, "1ms"), (0.25, "250ms"), (1, "1s"), (1.5, "1.5s"), (59.9994, "59.999s"),
     (60, "1m0s"), (360, "6m0s"), (61.25, "1m1.25s"), (3600, "1h0m0s")],
)
def test_reset_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_header_trio_and_retry_after() -> None:
    assert ratelimit_headers("requests", 60, 61, 1.0) == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s"}
    assert retry_after_text(0.01) == "1" and retry_after_text(2.2) == "3"
