"""The token estimate made before sending, OpenAI's rate-limit header formats, prices and budget periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from converters.usage import Usage
from limits.estimate import output_tokens, prompt_tokens, request_tokens
from limits.headers import duration_text, ratelimit_headers, retry_after_text
from limits.prices import cost, period, price_of


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


def test_files_and_audio_payloads_are_not_read_as_text() -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + "J" * 90_000}},
        {"type": "input_audio", "input_audio": {"data": "U" * 90_000, "format": "wav"}},
    ]}]}
    assert prompt_tokens(body) == 3 + 4 + 1600


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


def test_prices_in_nano_usd_with_cached_tokens_at_their_price() -> None:
    price = {"input": 3.0, "output": 15.0, "cached_input": 0.3}
    usage = Usage(input=1000, cached=400, cache_write=100, output=10, reported=True)
    # 600 uncached (cache writes among them) at $3/M, 400 cached at $0.30/M, 10 output at $15/M
    assert cost(price, usage) == 600 * 3000 + 400 * 300 + 10 * 15000
    assert cost({"input": 1.0}, Usage(input=10, cached=4, output=5)) == 10 * 1000  # no cached or output price
    models = {"gpt-4o-mini": {"price": price}, "bare": {"context_window": 1}}
    assert price_of(models, "openai/gpt-4o-mini") == price and price_of(models, "gpt-4o-mini") == price
    assert price_of(models, "x/bare") is None and price_of(models, "nope") is None


def test_budget_periods_are_utc_calendar_days_and_months() -> None:
    late = datetime(2026, 2, 28, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))  # 1 March UTC
    assert period("day", late) == ("2026-03-01", datetime(2026, 3, 2, tzinfo=UTC).timestamp())
    assert period("month", late) == ("2026-03", datetime(2026, 4, 1, tzinfo=UTC).timestamp())
    assert period("month", datetime(2026, 12, 31, 12, tzinfo=UTC))[1] == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
