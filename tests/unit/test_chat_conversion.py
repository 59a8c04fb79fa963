"""OpenAI <-> Anthropic chat conversion: requests, buffered answers and streams.

Converted answers and events are checked against the official SDKs' types, and
converted streams are reassembled with the SDKs' own accumulators.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from converters.base import Context
from converters.chat_mapping import FINISH_REASONS, openai_usage, openai_usage_json
from converters.chat_requests import anthropic_to_openai_request, openai_to_anthropic_request
from converters.chat_responses import (
    anthropic_to_openai_body,
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from converters.chat_streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from converters.encoding import encode
from converters.plain_events import ASCII_TEXT_DELTA_END, TEXT_DELTA_HEAD_SIZE, plain_run
from converters.registry import plan
from converters.sse import SSEDataReader, iter_data
from converters.usage import Usage, usage_from_anthropic, usage_from_body, usage_from_openai

ANTHROPIC_EVENT = TypeAdapter(RawMessageStreamEvent)
CREATED = 1_700_000_000
MODEL = "client-model"

WEATHER_TOOL_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather", "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
USER = {"role": "user", "content": "hi"}


# --- requests: OpenAI -> Anthropic ------------------------------------------------------------

OPENAI_TO_ANTHROPIC_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal, default max_tokens",
     {"model": "m", "messages": [USER]},
     {"model": "m", "messages": [USER], "max_tokens": 4096}),
    ("system and developer messages joined into system",
     {"messages": [{"role": "system", "content": "Be brief."},
                   {"role": "developer", "content": [{"type": "text", "text": "Use French."}]}, USER]},
     {"system": "Be brief.\n\nUse French.", "messages": [USER], "max_tokens": 4096}),
    ("multi-turn: same-role neighbours merged, empty turns dropped",
     {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "b"}]},
                   {"role": "assistant", "content": "c"}, {"role": "assistant", "content": ""},
                   {"role": "user", "content": "d"}]},
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                   {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}],
      "max_tokens": 4096}),
    ("images: base64 data URL and http URL",
     {"messages": [{"role": "user", "content": [
         {"type": "text", "text": "Same?"},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
         {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "text", "text": "Same?"},
         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
         {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}],
      "max_tokens": 4096}),
    ("PDF file part as a document block",
     {"messages": [{"role": "user", "content": [
         {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}],
      "max_tokens": 4096}),
    ("two parallel tool calls, their results grouped with the next user text",
     {"messages": [USER,
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                       {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                   {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "-3C"}]},
                   {"role": "user", "content": "Thanks"}],
      "tools": [WEATHER_TOOL_OPENAI]},
     {"messages": [USER,
                   {"role": "assistant", "content": [
                       {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                       {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}]},
                   {"role": "user", "content": [
                       {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                       {"type": "tool_result", "tool_use_id": "call_2", "content": "-3C"},
                       {"type": "text", "text": "Thanks"}]}],
      "tools": [WEATHER_TOOL_ANTHROPIC], "max_tokens": 4096}),
    ("text with a tool call; invalid JSON arguments become {}; ids made Anthropic-safe",
     {"messages": [USER,
                   {"role": "assistant", "content": "Checking.", "reasoning_content": "unsigned, dropped",
                    "tool_calls": [{"id": "functions.get_weather:0", "type": "function",
                                    "function": {"name": "get_weather", "arguments": '{"city": "Par'}}]},
                   {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "bad arguments"}]},
     {"messages": [USER,
                   {"role": "assistant", "content": [
                       {"type": "text", "text": "Checking."},
                       {"type": "tool_use", "id": "functions_get_weather_0", "name": "get_weather", "input": {}}]},
                   {"role": "user", "content": [
                       {"type": "tool_result", "tool_use_id": "functions_get_weather_0", "content": "bad arguments"}]}],
      "max_tokens": 4096}),
    ("tool results: an error-marked one becomes is_error, an empty one has no content",
     {"messages": [USER,
                   {"role": "assistant", "tool_calls": [
                       {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                       {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "Error: city is required"},
                   {"role": "tool", "tool_call_id": "call_2", "content": ""}]},
     {"messages": [USER,
                   {"role": "assistant", "content": [
                       {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
                       {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]},
                   {"role": "user", "content": [
                       {"type": "tool_result", "tool_use_id": "call_1", "is_error": True, "content": "city is required"},
                       {"type": "tool_result", "tool_use_id": "call_2"}]}],
      "max_tokens": 4096}),
    ("sampling, limits, stop, user, stream; unknown fields dropped",
     {"messages": [USER], "max_completion_tokens": 300, "max_tokens": 999, "temperature": 1.7, "top_p": 0.5,
      "stop": "END", "user": "u-42", "stream": True, "stream_options": {"include_usage": True},
      "frequency_penalty": 1, "seed": 3, "logprobs": True, "response_format": {"type": "text"}},
     {"messages": [USER], "max_tokens": 300, "temperature": 1.0, "stop_sequences": ["END"],
      "metadata": {"user_id": "u-42"}, "stream": True}),
    ("max_tokens, top_p alone, list of stops",
     {"messages": [USER], "max_tokens": 50, "top_p": 0.9, "stop": ["a", "", "b"]},
     {"messages": [USER], "max_tokens": 50, "top_p": 0.9, "stop_sequences": ["a", "b"]}),
    ("reasoning_effort: thinking on top of the default max_tokens; temperature dropped",
     {"messages": [USER], "reasoning_effort": "medium", "temperature": 0.2},
     {"messages": [USER], "max_tokens": 4096 + 8192, "thinking": {"type": "enabled", "budget_tokens": 8192}}),
    ("reasoning_effort: budget kept under the client's max_tokens",
     {"messages": [USER], "reasoning_effort": "high", "max_completion_tokens": 5000},
     {"messages": [USER], "max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 4999}}),
    ("reasoning_effort: no room for thinking under a small max_tokens",
     {"messages": [USER], "reasoning_effort": "low", "max_tokens": 800, "temperature": 0.3},
     {"messages": [USER], "max_tokens": 800, "temperature": 0.3}),
    ("reasoning_effort none",
     {"messages": [USER], "reasoning_effort": "none"},
     {"messages": [USER], "max_tokens": 4096}),
]

TOOL_CHOICES_TO_ANTHROPIC: list[tuple[object, object, dict[str, Any] | None]] = [
    (None, None, None),
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_weather"}}, False,
     {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    ("auto", True, {"type": "auto"}),
]


@pytest.mark.parametrize(("name", "doc", "expected"), OPENAI_TO_ANTHROPIC_REQUESTS,
                         ids=[case[0] for case in OPENAI_TO_ANTHROPIC_REQUESTS])
def test_openai_request_to_anthropic(name: str, doc: dict, expected: dict) -> None:
    assert openai_to_anthropic_request(doc) == expected


@pytest.mark.parametrize(("choice", "parallel", "expected"), TOOL_CHOICES_TO_ANTHROPIC)
def test_openai_tool_choice_to_anthropic(choice: object, parallel: object, expected: dict | None) -> None:
    doc: dict[str, Any] = {"messages": [USER], "tools": [WEATHER_TOOL_OPENAI]}
    if choice is not None:
        doc["tool_choice"] = choice
    if parallel is not None:
        doc["parallel_tool_calls"] = parallel
    out = openai_to_anthropic_request(doc)
    assert out["tools"] == [WEATHER_TOOL_ANTHROPIC]
    assert out.get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped_and_forced_tools_turn_thinking_off() -> None:
    assert "tool_choice" not in openai_to_anthropic_request({"messages": [USER], "tool_choice": "required"})
    out = openai_to_anthropic_request({"messages": [USER], "tools": [WEATHER_TOOL_OPENAI],
                                       "tool_choice": "required", "reasoning_effort": "high"})
    assert "thinking" not in out and out["max_tokens"] == 4096


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    out = openai_to_anthropic_request({"messages": [USER], "tools": [{"type": "function", "function": {"name": "now"}}]})
    assert out["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


# --- requests: Anthropic -> OpenAI ------------------------------------------------------------

ANTHROPIC_TO_OPENAI_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("system string, max_tokens",
     {"model": "m", "max_tokens": 100, "system": "Be brief.", "messages": [USER]},
     {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, USER], "max_completion_tokens": 100}),
    ("system text blocks joined; cache_control dropped",
     {"max_tokens": 10, "system": [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
                                   {"type": "text", "text": "B"}], "messages": [USER]},
     {"messages": [{"role": "system", "content": "A\n\nB"}, USER], "max_completion_tokens": 10}),
    ("multi-turn with block content",
     {"max_tokens": 10, "messages": [
         USER, {"role": "assistant", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "!"}]},
         {"role": "user", "content": [{"type": "text", "text": "again"}]}]},
     {"messages": [USER, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "again"}],
      "max_completion_tokens": 10}),
    ("images base64 and URL, PDF document",
     {"max_tokens": 10, "messages": [{"role": "user", "content": [
         {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
         {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
         {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
         {"type": "text", "text": "Describe."}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
         {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
         {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "document.pdf"}},
         {"type": "text", "text": "Describe."}]}],
      "max_completion_tokens": 10}),
    ("assistant thinking, text and two tool calls; results (one an error, one with an image) then text",
     {"max_tokens": 10, "tools": [WEATHER_TOOL_ANTHROPIC], "messages": [USER,
         {"role": "assistant", "content": [
             {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
             {"type": "redacted_thinking", "data": "opaque"},
             {"type": "text", "text": "Checking both."},
             {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
             {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}}]},
         {"role": "user", "content": [
             {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
             {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True, "content": [
                 {"type": "text", "text": "station offline"},
                 {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
             {"type": "text", "text": "And now?"}]}]},
     {"messages": [USER,
                   {"role": "assistant", "content": "Checking both.", "reasoning_content": "Two cities.",
                    "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
                   {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                   {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: station offline"},
                   {"role": "user", "content": [
                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                       {"type": "text", "text": "And now?"}]}],
      "max_completion_tokens": 10, "tools": [WEATHER_TOOL_OPENAI]}),
    ("tool-only assistant turn has null content; tool results alone make no user message",
     {"max_tokens": 10, "messages": [USER,
         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]}]},
     {"messages": [USER,
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "toolu_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
                   {"role": "tool", "tool_call_id": "toolu_1", "content": ""}],
      "max_completion_tokens": 10}),
    ("sampling, stop sequences, user, stream with usage; top_k dropped",
     {"max_tokens": 10, "messages": [USER], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
      "stop_sequences": ["END", "STOP"], "metadata": {"user_id": "u-42"}, "stream": True},
     {"messages": [USER], "max_completion_tokens": 10, "temperature": 0.5, "top_p": 0.9, "stop": ["END", "STOP"],
      "user": "u-42", "stream": True, "stream_options": {"include_usage": True}}),
    ("thinking budget -> reasoning_effort",
     {"max_tokens": 20000, "messages": [USER], "thinking": {"type": "enabled", "budget_tokens": 10000}},
     {"messages": [USER], "max_completion_tokens": 20000, "reasoning_effort": "medium"}),
    ("adaptive thinking with an effort",
     {"max_tokens": 10, "messages": [USER], "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
     {"messages": [USER], "max_completion_tokens": 10, "reasoning_effort": "high"}),
    ("thinking disabled",
     {"max_tokens": 10, "messages": [USER], "thinking": {"type": "disabled"}, "output_config": {"effort": "low"}},
     {"messages": [USER], "max_completion_tokens": 10}),
]

TOOL_CHOICES_TO_OPENAI: list[tuple[dict[str, Any] | None, object, bool | None]] = [
    (None, None, None),
    ({"type": "auto"}, "auto", None),
    ({"type": "any"}, "required", None),
    ({"type": "none"}, "none", None),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, None),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
     {"type": "function", "function": {"name": "get_weather"}}, False),
]

BUDGET_EFFORTS = [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high"), (64000, "high")]


@pytest.mark.parametrize(("name", "doc", "expected"), ANTHROPIC_TO_OPENAI_REQUESTS,
                         ids=[case[0] for case in ANTHROPIC_TO_OPENAI_REQUESTS])
def test_anthropic_request_to_openai(name: str, doc: dict, expected: dict) -> None:
    assert anthropic_to_openai_request(doc) == expected


@pytest.mark.parametrize(("choice", "expected", "parallel"), TOOL_CHOICES_TO_OPENAI)
def test_anthropic_tool_choice_to_openai(choice: dict | None, expected: object, parallel: bool | None) -> None:
    doc: dict[str, Any] = {"max_tokens": 1, "messages": [USER], "tools": [WEATHER_TOOL_ANTHROPIC]}
    if choice is not None:
        doc["tool_choice"] = choice
    out = anthropic_to_openai_request(doc)
    assert out["tools"] == [WEATHER_TOOL_OPENAI]
    assert out.get("tool_choice") == expected
    assert out.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize(("budget", "effort"), BUDGET_EFFORTS)
def test_thinking_budget_to_reasoning_effort(budget: int, effort: str) -> None:
    doc = {"max_tokens": 1, "messages": [USER], "thinking": {"type": "enabled", "budget_tokens": budget}}
    assert anthropic_to_openai_request(doc)["reasoning_effort"] == effort


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort_survives_a_round_trip(effort: str) -> None:
    there = openai_to_anthropic_request({"messages": [USER], "reasoning_effort": effort})
    assert anthropic_to_openai_request(there)["reasoning_effort"] == effort


@pytest.mark.parametrize("index", range(8))
def test_openai_requests_survive_a_round_trip(index: int) -> None:
    there = openai_to_anthropic_request(OPENAI_TO_ANTHROPIC_REQUESTS[index][1])
    assert openai_to_anthropic_request(anthropic_to_openai_request(there)) == there


BAD_REQUESTS: list[tuple[Callable[[dict], dict], dict[str, Any], str]] = [
    (openai_to_anthropic_request, {}, "'messages' must be a list"),
    (openai_to_anthropic_request, {"messages": "hi"}, "'messages' must be a list"),
    (openai_to_anthropic_request, {"messages": ["hi"]}, "messages[0] must be an object"),
    (openai_to_anthropic_request, {"messages": [{"role": "system", "content": "s"}]}, "no user or assistant"),
    (openai_to_anthropic_request, {"messages": [{"role": "function", "name": "f", "content": "x"}]}, "role 'function'"),
    (openai_to_anthropic_request, {"messages": [USER], "n": 2}, "'n'"),
    (openai_to_anthropic_request, {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}, "'input_audio'"),
    (openai_to_anthropic_request, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}, "http(s) URL"),
    (openai_to_anthropic_request, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}, "'image/bmp'"),
    (openai_to_anthropic_request, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]}, "base64"),
    (openai_to_anthropic_request, {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-1"}}]}]}, "inline"),
    (openai_to_anthropic_request, {"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    (openai_to_anthropic_request, {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "custom", "custom": {"name": "x", "input": "y"}}]}]}, "only function tool calls"),
    (openai_to_anthropic_request, {"messages": [USER], "tools": [
        {"type": "custom", "custom": {"name": "grammar"}}]}, "only function tools"),
    (openai_to_anthropic_request, {"messages": [USER], "tools": [WEATHER_TOOL_OPENAI],
                                   "tool_choice": {"type": "allowed_tools"}}, "'tool_choice'"),
    (openai_to_anthropic_request, {"messages": [USER], "max_tokens": 0}, "positive integer"),
    (openai_to_anthropic_request, {"messages": [USER], "reasoning_effort": "ultra"}, "'reasoning_effort'"),
    (openai_to_anthropic_request, {"messages": [USER], "stop": 5}, "stop sequences"),
    (openai_to_anthropic_request, {"messages": [USER], "temperature": "hot"}, "'temperature' must be a number"),
    (anthropic_to_openai_request, {"max_tokens": 1}, "'messages' must be a list"),
    (anthropic_to_openai_request, {"messages": [{"role": "system", "content": "s"}]}, "role 'system'"),
    (anthropic_to_openai_request, {"messages": [USER], "tools": [
        {"type": "web_search_20250305", "name": "web_search"}]}, "server tool 'web_search_20250305'"),
    (anthropic_to_openai_request, {"messages": [{"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]}, "'server_tool_use'"),
    (anthropic_to_openai_request, {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}, "'image'"),
    (anthropic_to_openai_request, {"messages": [USER], "tools": [WEATHER_TOOL_ANTHROPIC],
                                   "tool_choice": {"type": "sometimes"}}, "'tool_choice'"),
    (anthropic_to_openai_request, {"messages": [USER], "max_tokens": "lots"}, "positive integer"),
    (anthropic_to_openai_request, {"messages": [USER], "system": 3}, "system must be"),
]


@pytest.mark.parametrize(("convert", "doc", "message"), BAD_REQUESTS)
def test_unconvertible_requests_raise_value_error(convert: Callable[[dict], dict], doc: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        convert(doc)
    assert message in str(raised.value)


# Any JSON value, weighted towards the words the converters look for.
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 70000) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "auto", "none", "any", "required", "low", "high", "max", "text", "image",
                       "image_url", "file", "json_schema", "json_object", "function", "tool", "tool_use",
                       "tool_result", "thinking", "redacted_thinking", "enabled", "disabled", "adaptive",
                       "user", "assistant", "system", "tool", "data:image/png;base64,AA==", "https://x/y"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "text", "name", "role", "content", "id", "input", "arguments", "function",
                         "schema", "json_schema", "format", "effort", "budget_tokens", "tool_calls",
                         "tool_call_id", "tool_use_id", "thinking_blocks", "signature", "source", "url",
                         "image_url", "media_type", "data", "is_error", "parameters", "input_schema",
                         "description", "user_id", "disable_parallel_tool_use"]),
        inner, max_size=4),
    max_leaves=12,
)
REQUEST_KEYS = ["messages", "system", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort",
                "response_format", "thinking", "output_config", "output_format", "metadata", "user", "stop",
                "stop_sequences", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stream"]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([openai_to_anthropic_request, anthropic_to_openai_request]),
       st.dictionaries(st.sampled_from(REQUEST_KEYS), ANY_JSON, max_size=6),
       st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool", "system"])},
                                      optional={key: ANY_JSON for key in ("content", "tool_calls", "tool_call_id",
                                                                          "thinking_blocks")}),
                min_size=1, max_size=4))
def test_any_request_converts_or_raises_value_error(convert: Callable[[dict], dict], fields: dict,
                                                    messages: list) -> None:
    """Whatever a client sends, conversion gives a request the gateway can encode, or a ValueError (a 400)."""
    try:
        out = convert({**fields, "messages": messages} if "messages" not in fields else fields)
    except ValueError:
        return
    json.dumps(out)


def _as_parts(message: dict) -> dict:
    """`message` with string content given as one text part: what the string's fast path must equal."""
    content = message.get("content")
    return {**message, "content": [{"type": "text", "text": content}]} if isinstance(content, str) else message


TEXTS = st.sampled_from(["", "hi", 'a "quoted" \\ line\n', "\u00e9t\u00e9 \U0001f600", "\x00\x1f"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer"]), "content": TEXTS}),
    st.fixed_dictionaries({"role": st.just("user"),
                           "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXTS}),
                                               max_size=2)}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": st.just("call_1"), "content": TEXTS}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none(), "tool_calls": st.just(
        [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}])}),
), min_size=1, max_size=6))
def test_string_contents_convert_as_their_text_parts(messages: list[dict]) -> None:
    """A message whose content is a string (read without making blocks) converts as the same text given
    as one text part does, merged with its neighbours or not, or fails alike."""
    def converted(given: list[dict]) -> object:
        try:
            return openai_to_anthropic_request({"model": "m", "messages": given})
        except ValueError as exc:
            return str(exc)
    assert converted(messages) == converted([_as_parts(message) for message in messages])


# --- buffered answers -------------------------------------------------------------------------

ANTHROPIC_MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Checking "},
        {"type": "text", "text": "both."},
        {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Oslo"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30,
              "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 12}},
}

OPENAI_COMPLETION = {
    "id": "chatcmpl-01", "object": "chat.completion", "created": 5, "model": "gpt-x",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking both.", "reasoning_content": "Two cities.",
        "tool_calls": [
            {"id": "call_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Os'}}]}}],
    "usage": {"prompt_tokens": 150, "completion_tokens": 40, "total_tokens": 190,
              "prompt_tokens_details": {"cached_tokens": 100},
              "completion_tokens_details": {"reasoning_tokens": 12}},
}


def test_anthropic_message_to_chat_completion() -> None:
    out = anthropic_to_openai_response(ANTHROPIC_MESSAGE, Context({}, MODEL), created=CREATED)
    ChatCompletion.model_validate(out)
    assert out == {
        "id": "msg_01", "object": "chat.completion", "created": CREATED, "model": MODEL,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking both.", "reasoning_content": "Two cities.",
            "thinking_blocks": [{"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
                                {"type": "redacted_thinking", "data": "opaque"}],
            "tool_calls": [
                {"id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "toolu_B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}}],
        "usage": {"prompt_tokens": 150, "completion_tokens": 40, "total_tokens": 190,
                  "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 30},
                  "completion_tokens_details": {"reasoning_tokens": 12}},
    }


def test_chat_completion_to_anthropic_message() -> None:
    out = openai_to_anthropic_response(OPENAI_COMPLETION, Context({}, MODEL))
    Message.model_validate(out)
    assert out == {
        "id": "chatcmpl-01", "type": "message", "role": "assistant", "model": MODEL,
        "content": [
            {"type": "thinking", "thinking": "Two cities.", "signature": ""},
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_B", "name": "get_weather", "input": {}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 50, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100,
                  "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 12}},
    }


def test_plain_answers_both_ways() -> None:
    message = {"id": "msg_2", "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 3, "output_tokens": 1}}
    out = anthropic_to_openai_response(message, Context({}, MODEL), created=CREATED)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hi"}
    assert out["usage"]["prompt_tokens"] == 3 and out["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    completion = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "Hi"}}]}
    back = openai_to_anthropic_response(completion, Context({}, MODEL))
    Message.model_validate(back)
    assert back["content"] == [{"type": "text", "text": "Hi"}]
    assert back["usage"] == {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                             "output_tokens": 0}


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
    (None, "stop"),
])
def test_stop_reason_to_finish_reason(stop: str | None, finish: str) -> None:
    message = {"id": "m", "content": [{"type": "text", "text": "x"}], "stop_reason": stop}
    out = anthropic_to_openai_response(message, Context({}, MODEL), created=CREATED)
    assert out["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(("finish", "extra", "client", "stop", "sequence"), [
    ("stop", {}, {}, "end_turn", None),
    ("length", {}, {}, "max_tokens", None),
    ("tool_calls", {}, {}, "tool_use", None),
    ("function_call", {}, {}, "tool_use", None),
    ("content_filter", {}, {}, "refusal", None),
    (None, {}, {}, "end_turn", None),
    ("stop", {"stop_reason": "END"}, {"stop_sequences": ["END"]}, "stop_sequence", "END"),
    ("stop", {"stop_reason": "END"}, {}, "end_turn", None),
    ("stop", {"stop_reason": 128001}, {"stop_sequences": ["END"]}, "end_turn", None),
])
def test_finish_reason_to_stop_reason(finish: str | None, extra: dict, client: dict, stop: str,
                                      sequence: str | None) -> None:
    completion = {"id": "c", "choices": [{"index": 0, "finish_reason": finish, **extra,
                                          "message": {"role": "assistant", "content": "x"}}]}
    out = openai_to_anthropic_response(completion, Context(client, MODEL))
    assert (out["stop_reason"], out["stop_sequence"]) == (stop, sequence)


def test_tool_calls_finished_with_stop_and_refusals_map_sensibly() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    completion = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": None, "tool_calls": calls}}]}
    assert openai_to_anthropic_response(completion, Context({}, MODEL))["stop_reason"] == "tool_use"
    refused = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": None, "refusal": "No."}}]}
    out = openai_to_anthropic_response(refused, Context({}, MODEL))
    assert out["content"] == [{"type": "text", "text": "No."}] and out["stop_reason"] == "refusal"


def test_answers_given_their_metered_usage_are_the_same() -> None:
    """The handler hands over the usage it metered (read once); the cache writes an OpenAI
    answer reports reach the Anthropic client, not the metered usage."""
    metered = usage_from_anthropic(ANTHROPIC_MESSAGE)
    given = anthropic_to_openai_response(ANTHROPIC_MESSAGE, Context({}, MODEL), metered, created=CREATED)
    assert given == anthropic_to_openai_response(ANTHROPIC_MESSAGE, Context({}, MODEL), created=CREATED)
    written = {**OPENAI_COMPLETION, "usage": {**OPENAI_COMPLETION["usage"], "prompt_tokens_details": {
        "cached_tokens": 100, "cache_write_tokens": 20}}}
    metered = usage_from_openai(written)
    given = openai_to_anthropic_response(written, Context({}, MODEL), metered)
    assert given == openai_to_anthropic_response(written, Context({}, MODEL))
    assert given["usage"]["cache_creation_input_tokens"] == 20 and metered.cache_write == 0


def _outcome(make: Callable[[], object]) -> object:
    """What `make()` gives, or the type and message of what it raises."""
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - any failure must be the same one both ways
        return type(exc), str(exc)


HOSTILE_TEXTS = st.one_of(st.text(), st.sampled_from(['"', "\\", '\\"', "\x00\x1f\x7f", "caf\u00e9 \u2603 \U0001f600",
                                                     "\ud800", "\u2028\u2029", "</script>"]))
ANSWER_VALUES = st.one_of(HOSTILE_TEXTS, st.none(), st.integers(), st.just(""), st.lists(st.integers(), max_size=2),
                          st.just({"nested": [1]}))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(st.fixed_dictionaries({"type": st.just("text")}, optional={"text": ANSWER_VALUES}),
                          max_size=2),
                 st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "thinking", "tool_use", "other"])},
                                                optional={"text": ANSWER_VALUES, "thinking": HOSTILE_TEXTS,
                                                          "input": st.just({"a": 1})}), max_size=2),
                 ANSWER_VALUES),
       ANSWER_VALUES, st.sampled_from([*FINISH_REASONS, "other", None, 5]),
       st.tuples(*(st.integers(min_value=0, max_value=2**53) for _ in range(5))), st.booleans())
def test_written_answers_are_the_encoded_converted_ones(content: object, answer_id: object, stop: object,
                                                        counts: tuple[int, ...], bare: bool) -> None:
    """The usual answer (one text block) is written straight into its bytes: for any content,
    id, stop reason and usage, what the general conversion encodes, or its failure."""
    doc = {"content": content, "stop_reason": stop} if bare else {
        "id": answer_id, "type": "message", "content": content, "stop_reason": stop}
    usage = Usage(*counts[:4], True, counts[4] if counts[4] % 3 == 0 else 0)
    context = Context({}, MODEL)
    assert _outcome(lambda: anthropic_to_openai_body(doc, context, usage, CREATED)) == _outcome(
        lambda: encode(anthropic_to_openai_response(doc, context, usage, CREATED), "the answer"))


@given(st.tuples(*(st.integers(min_value=0, max_value=2**53) for _ in range(6))))
def test_written_openai_usage_is_the_encoded_one(counts: tuple[int, ...]) -> None:
    for cache_write in (0, counts[5]):
        usage = Usage(*counts[:4], True, cache_write)
        assert openai_usage_json(usage) == orjson.dumps(openai_usage(usage))


def test_answers_that_are_not_objects_raise_value_error() -> None:
    with pytest.raises(ValueError, match="Anthropic answer"):
        anthropic_to_openai_response([], Context({}, MODEL))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="OpenAI answer"):
        openai_to_anthropic_response("oops", Context({}, MODEL))  # type: ignore[arg-type]


# --- usage ------------------------------------------------------------------------------------


def test_anthropic_usage_counts_every_prompt_token_as_input() -> None:
    usage = Usage()
    usage.add_anthropic({"input_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30,
                         "output_tokens": 1})
    assert (usage.input, usage.cached, usage.cache_write, usage.output) == (150, 100, 30, 1)
    usage.add_anthropic({"output_tokens": 40})  # a message_delta without input counts keeps them
    assert (usage.input, usage.cached, usage.output) == (150, 100, 40)
    usage.add_anthropic({"input_tokens": 25, "output_tokens": 41, "output_tokens_details": {"thinking_tokens": 9}})
    assert (usage.input, usage.cached, usage.output, usage.reasoning) == (155, 100, 41, 9)


def test_usage_from_anthropic_body() -> None:
    usage = usage_from_body(json.dumps(ANTHROPIC_MESSAGE).encode(), usage_from_anthropic)
    assert (usage.input, usage.output, usage.cached, usage.reasoning, usage.reported) == (150, 40, 100, 12, True)
    assert usage_from_anthropic(ANTHROPIC_MESSAGE) == usage  # the document a conversion parsed
    assert not usage_from_body(b"not json", usage_from_anthropic).reported
    assert not usage_from_body(b'{"type": "message"}', usage_from_anthropic).reported
    assert not usage_from_anthropic(["not", "a", "message"]).reported


# --- streams: fixtures ------------------------------------------------------------------------


def _anthropic_sse(events: list[dict[str, Any]], crlf: bool = False, compact: bool = False) -> bytes:
    """Events as SSE; `compact` writes their JSON without spaces, as Anthropic does (the form
    whose plain text deltas the converter splices without parsing)."""
    sep = "\r\n" if crlf else "\n"
    separators = (",", ":") if compact else None
    return "".join(f"event: {e['type']}{sep}data: {json.dumps(e, ensure_ascii=False, separators=separators)}{sep}{sep}"
                   for e in events).encode()


def _openai_sse(chunks: list[dict[str, Any]], done: bool = True, crlf: bool = False) -> bytes:
    sep = "\r\n\r\n" if crlf else "\n\n"
    text = "".join(f"data: {json.dumps(c, ensure_ascii=False)}{sep}" for c in chunks)
    return (text + (f"data: [DONE]{sep}" if done else "")).encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _message_start(usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": usage or {"input_tokens": 25, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 100,
                           "output_tokens": 1}}}


def _text_block(index: int, pieces: list[str]) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
              for p in pieces),
            {"type": "content_block_stop", "index": index}]


def _tool_block(index: int, tool_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": index,
             "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}},
            {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}},
            *({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}
              for p in _pieces(arguments, 4)),
            {"type": "content_block_stop", "index": index}]


def _message_end(stop: str, output: int, sequence: str | None = None) -> list[dict[str, Any]]:
    return [{"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": sequence},
             "usage": {"output_tokens": output}},
            {"type": "message_stop"}]


ANTHROPIC_STREAMS: dict[str, list[dict[str, Any]]] = {
    "text": [_message_start(), {"type": "ping"}, *_text_block(0, ["Hello", ", wörld ☃", "!"]),
             *_message_end("end_turn", 12)],
    "parallel tools": [_message_start(), *_text_block(0, ["Let me check ", "both."]),
                       *_tool_block(1, "toolu_01A", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
                       *_tool_block(2, "toolu_01B", "get_time", '{"timezone": "Europe/Oslo"}'),
                       *_message_end("tool_use", 64)],
    "max tokens": [_message_start(), *_text_block(0, ["Once upon", " a time"]), *_message_end("max_tokens", 5)],
    "thinking then text": [
        _message_start(),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "The user wants "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "a greeting."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB"}},
        {"type": "content_block_stop", "index": 1},
        *_text_block(2, ["Hi ", "there."]),
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"input_tokens": 25, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 100,
                   "output_tokens": 30, "output_tokens_details": {"thinking_tokens": 20}}},
        {"type": "message_stop"}],
    "stop sequence": [_message_start(), *_text_block(0, ["1, 2, 3"]), *_message_end("stop_sequence", 6, "4")],
    "error": [_message_start(), *_text_block(0, ["Hel"])[:2],
              {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
              *_message_end("end_turn", 1)],
    "cut": [_message_start(), *_text_block(0, ["Hello", " wor"])[:3]],
}
COMPLETE_ANTHROPIC = ["text", "parallel tools", "max tokens", "thinking then text", "stop sequence"]


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}]
    return {"id": "chatcmpl-9abc", "object": "chat.completion.chunk", "created": 1_700_000_123,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1", "choices": choices}


def _usage_chunk(prompt: int = 150, completion: int = 12, cached: int = 100, reasoning: int = 0) -> dict[str, Any]:
    return {**_chunk(), "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                  "total_tokens": prompt + completion,
                                  "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                                  "completion_tokens_details": {"reasoning_tokens": reasoning}}}


def _openai_calls(index: int, call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return [_chunk({"tool_calls": [first]}),
            *(_chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in _pieces(arguments, 3))]


OPENAI_STREAMS: dict[str, tuple[list[dict[str, Any]], bool]] = {
    "text": ([_chunk({"role": "assistant", "content": "", "refusal": None}),
              *(_chunk({"content": p}) for p in ["Hello", ", wörld ☃", "!"]),
              _chunk({}, "stop"), _usage_chunk()], True),
    "parallel tools": ([_chunk({"role": "assistant", "content": None}),
                        *_openai_calls(0, "call_A1", "get_weather", '{"city":"Paris","unit":"celsius"}'),
                        *_openai_calls(1, "call_B2", "get_time", '{"timezone":"Europe/Oslo"}'),
                        _chunk({}, "tool_calls"), _usage_chunk(completion=64)], True),
    "text then tools": ([_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Checking."}),
                         *_openai_calls(0, "functions.get_weather:0", "get_weather", '{"city":"Paris"}'),
                         _chunk({}, "tool_calls"), _usage_chunk()], True),
    "length": ([_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Once upon"}),
                _chunk({"content": " a time"}), _chunk({}, "length"), _usage_chunk(completion=5)], True),
    "reasoning then text": ([_chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
                             _chunk({"content": None, "reasoning_content": "The user wants "}),
                             _chunk({"content": None, "reasoning_content": "a greeting."}),
                             _chunk({"content": "Hi ", "reasoning_content": None}), _chunk({"content": "there."}),
                             _chunk({}, "stop"), _usage_chunk(completion=30, reasoning=20)], True),
    "stop sequence": ([_chunk({"role": "assistant", "content": "1, 2, 3"}), _chunk({}, "stop", stop_reason="4"),
                       _usage_chunk(completion=6)], True),
    "error": ([_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"}),
               {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}},
               _chunk({"content": "lo"})], False),
    "cut": ([_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hello"}),
             _chunk({"content": " wor"})], False),
}
COMPLETE_OPENAI = ["text", "parallel tools", "text then tools", "length", "reasoning then text", "stop sequence"]
ANTHROPIC_CLIENT = {"model": MODEL, "max_tokens": 100, "stop_sequences": ["4"], "messages": [USER], "stream": True}
OPENAI_CLIENT = {"model": MODEL, "messages": [USER], "stream": True, "stream_options": {"include_usage": True}}


def _anthropic_bytes(name: str, crlf: bool = False) -> bytes:
    return _anthropic_sse(ANTHROPIC_STREAMS[name], crlf)


def _openai_bytes(name: str, crlf: bool = False) -> bytes:
    chunks, done = OPENAI_STREAMS[name]
    return _openai_sse(chunks, done, crlf)


def _to_openai(pieces: list[bytes], client: dict[str, Any] = OPENAI_CLIENT) -> tuple[bytes, Usage]:
    converter = AnthropicToOpenAIStream(Context(client, MODEL), created=CREATED)
    return b"".join(converter.feed(p) for p in pieces) + converter.close(), converter.usage


def _to_anthropic(pieces: list[bytes], client: dict[str, Any] = ANTHROPIC_CLIENT) -> tuple[bytes, Usage]:
    converter = OpenAIToAnthropicStream(Context(client, MODEL))
    return b"".join(converter.feed(p) for p in pieces) + converter.close(), converter.usage


def _openai_events(out: bytes) -> list[Any]:
    """The chunks of a converted stream, each checked against the SDK's type; '[DONE]' as is."""
    assert out.endswith(b"\n\n")
    events: list[Any] = []
    for raw in out.decode().split("\n\n")[:-1]:
        assert raw.startswith("data: ") and "\n" not in raw, raw
        data = raw[6:]
        if data == "[DONE]":
            events.append(data)
            continue
        event = json.loads(data)
        if "error" not in event:
            ChatCompletionChunk.model_validate(event)
        events.append(event)
    return events


def _anthropic_events(out: bytes) -> list[dict[str, Any]]:
    """The events of a converted stream, each checked against the SDK's type and its event: line."""
    assert out.endswith(b"\n\n")
    events = []
    for raw in out.decode().split("\n\n")[:-1]:
        name, data = raw.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        if event["type"] != "error":
            ANTHROPIC_EVENT.validate_python(event)
        events.append(event)
    return events


def _accumulate_anthropic(events: list[dict[str, Any]]) -> dict[str, Any]:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event["type"] not in ("ping", "error"):
            snapshot = accumulate_event(event=ANTHROPIC_EVENT.validate_python(event), current_snapshot=snapshot,
                                        json_bufs=buffers)
    assert snapshot is not None
    return snapshot.to_dict()


def _accumulate_openai(events: list[Any]) -> dict[str, Any]:
    state = ChatCompletionStreamState()
    for event in events:
        if event != "[DONE]":
            list(state.handle_chunk(ChatCompletionChunk.model_validate(event)))
    return state.current_completion_snapshot.model_dump(exclude_none=True)


# --- streams: Anthropic -> OpenAI -------------------------------------------------------------


def test_anthropic_text_stream_to_openai_chunks() -> None:
    out, usage = _to_openai([_anthropic_bytes("text")])
    events = _openai_events(out)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [e["choices"][0]["delta"].get("content") for e in events[1:4]] == ["Hello", ", wörld ☃", "!"]
    assert events[4]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert events[5]["choices"] == [] and events[5]["usage"] == {
        "prompt_tokens": 135, "completion_tokens": 12, "total_tokens": 147,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 0}}
    assert events[6:] == ["[DONE]"]
    assert all(e["id"] == "msg_01XYZ" and e["model"] == MODEL and e["created"] == CREATED for e in events[:6])
    assert (usage.input, usage.output, usage.cached) == (135, 12, 100)


def test_usage_chunk_only_when_the_client_asked() -> None:
    out, usage = _to_openai([_anthropic_bytes("text")], {"model": MODEL, "messages": [USER], "stream": True})
    events = _openai_events(out)
    assert events[-2]["choices"][0]["finish_reason"] == "stop" and events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])
    assert usage.reported and usage.output == 12


def test_anthropic_parallel_tools_get_openai_indexes_in_order() -> None:
    events = _openai_events(_to_openai([_anthropic_bytes("parallel tools")])[0])
    calls = [c for e in events[:-1] if e["choices"] for c in e["choices"][0]["delta"].get("tool_calls", [])]
    starts = [c for c in calls if "id" in c]
    assert starts == [
        {"index": 0, "id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "toolu_01B", "type": "function", "function": {"name": "get_time", "arguments": ""}}]
    for index, arguments in ((0, '{"city": "Paris", "unit": "celsius"}'), (1, '{"timezone": "Europe/Oslo"}')):
        assert "".join(c["function"]["arguments"] for c in calls if c["index"] == index) == arguments
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_anthropic_max_tokens_and_thinking_streams() -> None:
    events = _openai_events(_to_openai([_anthropic_bytes("max tokens")])[0])
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    out, usage = _to_openai([_anthropic_bytes("thinking then text")])
    deltas = [e["choices"][0]["delta"] for e in _openai_events(out)[1:-3]]
    assert deltas == [
        {"reasoning_content": "The user wants "}, {"reasoning_content": "a greeting."},
        {"thinking_blocks": [{"index": 0, "type": "thinking", "thinking": "The user wants a greeting.",
                              "signature": "EqQBCgIYAhIM"}]},
        {"thinking_blocks": [{"index": 1, "type": "redacted_thinking", "data": "EmwKAhgB"}]},
        {"content": "Hi "}, {"content": "there."}]
    assert usage.reasoning == 20


def test_anthropic_error_event_becomes_an_openai_error_and_ends_the_stream() -> None:
    events = _openai_events(_to_openai([_anthropic_bytes("error")])[0])
    assert [e["choices"][0]["delta"] for e in events[:2]] == [{"role": "assistant", "content": ""}, {"content": "Hel"}]
    assert events[2:] == [{"error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}}]


def test_anthropic_stream_cut_short_is_closed_well_formed() -> None:
    converter = AnthropicToOpenAIStream(Context(OPENAI_CLIENT, MODEL), created=CREATED)
    fed = converter.feed(_anthropic_bytes("cut"))
    assert not fed.endswith(b"data: [DONE]\n\n")
    events = _openai_events(fed + converter.close())
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["Hello", " wor"]
    assert events[3]["choices"][0]["finish_reason"] == "stop" and events[4]["usage"]["prompt_tokens"] == 135
    assert events[5] == "[DONE]"


def test_an_empty_or_eventless_upstream_closes_empty() -> None:
    for upstream in (b"", b": keep-alive\n\n", b"event: ping\ndata: {\"type\": \"ping\"}\n\n"):
        assert _to_openai([upstream])[0] == b""
    for upstream in (b"", b": OPENROUTER PROCESSING\n\n", b"data: [DONE]\n\n"):
        assert _to_anthropic([upstream])[0] == b""


@pytest.mark.parametrize("name", COMPLETE_ANTHROPIC)
def test_reassembled_openai_stream_equals_the_converted_buffered_answer(name: str) -> None:
    body = _accumulate_anthropic(ANTHROPIC_STREAMS[name])
    expected = anthropic_to_openai_response(body, Context(OPENAI_CLIENT, MODEL), created=CREATED)
    ChatCompletion.model_validate(expected)
    got = _accumulate_openai(_openai_events(_to_openai([_anthropic_bytes(name)])[0]))
    assert _openai_essence(got) == _openai_essence(expected)


def _openai_essence(completion: dict[str, Any]) -> dict[str, Any]:
    choice = completion["choices"][0]
    message = choice["message"]
    return {
        "id": completion["id"], "model": completion["model"], "created": completion["created"],
        "finish_reason": choice["finish_reason"], "content": message.get("content") or "",
        "reasoning": message.get("reasoning_content"),
        "thinking_blocks": [{k: v for k, v in block.items() if k != "index"}
                            for block in message.get("thinking_blocks") or ()],
        "tool_calls": [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                       for c in message.get("tool_calls") or ()],
        "usage": completion["usage"],
    }


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
def test_compact_anthropic_events_convert_as_spaced_ones(name: str) -> None:
    spaced = _to_openai([_anthropic_sse(ANTHROPIC_STREAMS[name])])
    assert _fingerprint(_to_openai([_anthropic_sse(ANTHROPIC_STREAMS[name], compact=True)])) == _fingerprint(spaced)


def _text_stream(texts: list[str], index: int = 0) -> list[dict[str, Any]]:
    events = [_message_start(), *_text_block(index, texts[:1]), {"type": "ping"}, *_text_block(index + 1, texts[1:])]
    return [*events, *_message_end("end_turn", 7)]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(), min_size=1, max_size=6), index=st.integers(0, 12), ascii_only=st.booleans())
def test_spliced_text_deltas_are_the_chunks_parsing_gives(texts: list[str], index: int, ascii_only: bool) -> None:
    """Text deltas of any text, escaped or not (quotes, backslashes, controls, \\u escapes with
    ascii_only), come out as parsing each event and encoding its chunk gives them."""
    events = _text_stream(texts, index)
    spaced = "".join(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=ascii_only)}\n\n" for e in events)
    compact = "".join(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=ascii_only, separators=(',', ':'))}\n\n"
                      for e in events)
    expected = _to_openai([spaced.encode()])
    assert _fingerprint(_to_openai([compact.encode()])) == _fingerprint(expected)
    assert _fingerprint(_to_openai(_one_by_one(compact.encode()))) == _fingerprint(expected)
    got = [e["choices"][0]["delta"].get("content") for e in _openai_events(expected[0])[1:-3]]
    assert got == [text for text in texts if text]


def test_text_deltas_that_are_not_valid_json_are_dropped_spliced_or_not() -> None:
    """What parsing refuses (invalid UTF-8, an index with a leading zero) is dropped as before;
    the plain deltas around it still convert."""
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%s,' \
            b'"delta":{"type":"text_delta","text":"%s"}}\n\n'
    start = _anthropic_sse([_message_start(), *_text_block(0, [])[:1]], compact=True)
    end = _anthropic_sse(_message_end("end_turn", 3), compact=True)
    middle = delta % (b"0", b"Hello") + delta % (b"0", b"caf\xc3") + delta % (b"01", b"x") + delta % (b"0", b" you")
    events = _openai_events(_to_openai([start + middle + end])[0])
    assert [e["choices"][0]["delta"].get("content") for e in events[1:-3]] == ["Hello", " you"]
    for cut in range(len(middle) + 1):
        pieces = [start + middle[:cut], middle[cut:] + end]
        assert _to_openai(pieces)[0] == _to_openai([start + middle + end])[0], cut
    assert _to_openai(_one_by_one(start + middle + end))[0] == _to_openai([start + middle + end])[0]


def test_a_plain_event_that_ends_a_held_one_is_read_with_it() -> None:
    """A read that is one plain text delta, but completes the event held back before it, is
    that whole event (here two data lines: not JSON, dropped), not a text delta alone."""
    start = _anthropic_sse([_message_start(), *_text_block(0, [])[:1]], compact=True)
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' \
            b'"delta":{"type":"text_delta","text":"%s"}}\n\n'
    end = _anthropic_sse(_message_end("end_turn", 3), compact=True)
    out = _to_openai([start, delta % b"Hello", b'data: {"type":"ping"}\n', delta % b"lost", end])[0]
    assert [e["choices"][0]["delta"].get("content") for e in _openai_events(out)[1:-3]] == ["Hello"]


_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,' \
         b'"delta":{"type":"text_delta","text":"%s"}}'
_SPACED_DELTA = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": %d, ' \
                b'"delta": {"type": "text_delta", "text": "%s"}}'
_PING = b'event: ping\ndata: {"type":"ping"}'
PLAIN_RUNS: list[tuple[str, list[bytes], list[bytes], int]] = [
    ("usual forms: text deltas, a block's start and end, pings",
     [b'event: content_block_start\ndata: {"type":"content_block_start","index":3,'
      b'"content_block":{"type":"text","text":""}}', _PING, _DELTA % (3, b"Hi"), _DELTA % (3, b" there"),
      b'event: content_block_stop\ndata: {"type":"content_block_stop","index":3}'], [b"Hi", b" there"], 5),
    ("other forms, by the patterns: no event line, spaces, index 12",
     [b'data: {"type":"ping"}', b'data:  {"type":"content_block_delta","index":12,'
      b'"delta":{"type":"text_delta","text":"x"}}', b'event: content_block_stop\ndata:{"type":"content_block_stop",'
      b'"index":0}'], [b"x"], 3),
    ("an escaped text ends the run", [_DELTA % (0, b"a"), _DELTA % (0, b"line\\n"), _DELTA % (0, b"b")], [b"a"], 1),
    ("so does a quote", [_DELTA % (0, b'a","x":"b')], [], 0),
    ("an empty text", [_DELTA % (0, b"")], [], 0),
    ("a spaced event", [b'data: {"type": "ping"}'], [], 0),
    ("a leading zero", [_DELTA % (0, b"a"), _DELTA.replace(b"%d", b"01") % b"b"], [b"a"], 1),
    ("any other event", [_DELTA % (1, b"a"), b'event: message_stop\ndata: {"type":"message_stop"}'], [b"a"], 1),
    ("text that would not parse is left out, and the run goes on",
     [_DELTA % (0, b"a\x01"), _DELTA % (0, b"caf\xc3"), _DELTA % (0, b"caf\xc3\xa9"), _DELTA % (0, b"\x7f\xc2\xa0")],
     [b"caf\xc3\xa9", b"\x7f\xc2\xa0"], 4),
]


@pytest.mark.parametrize(("name", "events", "texts", "stop"), PLAIN_RUNS, ids=[case[0] for case in PLAIN_RUNS])
def test_plain_runs_are_read_without_parsing(name: str, events: list[bytes], texts: list[bytes], stop: int) -> None:
    assert plain_run(events, 0, len(events)) == (texts, stop)
    assert plain_run(events, 0, stop) == (texts, stop)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["text", "raw", "ping", "stop"]), st.text(max_size=4),
                          st.binary(max_size=3), st.integers(0, 11)), max_size=10))
def test_spliced_runs_give_what_parsing_gives(events: list[tuple[str, str, bytes, int]]) -> None:
    """Text deltas of any text, or of raw bytes (quotes, controls, bytes that are not UTF-8),
    between pings and block ends, come out of a run as parsing each event gives them."""
    start = _anthropic_sse([_message_start(), *_text_block(0, [])[:1]], compact=True)
    end = _anthropic_sse(_message_end("end_turn", 3), compact=True)
    usual, spaced = [start], [start]
    for kind, text, junk, index in events:
        if kind in ("text", "raw"):
            body = json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass") if kind == "text" else junk
            usual.append(_DELTA % (index, body) + b"\n\n")
            spaced.append(_SPACED_DELTA % (index, body) + b"\n\n")
        else:
            event = _PING if kind == "ping" else b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}'
            usual.append(event + b"\n\n")
            spaced.append(event.replace(b'":', b'": ') + b"\n\n")
    expected = _to_openai([b"".join([*spaced, end])])
    assert _to_openai([b"".join([*usual, end])]) == expected
    assert _to_openai([*usual, end]) == expected



def test_a_lone_usual_text_delta_is_spliced_when_its_text_is_printable_ascii() -> None:
    """A read that is one usual text delta with printable ASCII text takes the converter's
    quickest path (ASCII_TEXT_DELTA_END); any other byte in the text, or an event not yet
    ended, goes the long way: either way the chunks are those of the spaced form, which
    always goes the long way."""
    start = _anthropic_sse([_message_start(), *_text_block(0, [])[:1]], compact=True)
    end = _anthropic_sse(_message_end("end_turn", 3), compact=True)
    for byte in range(256):
        text = b"a" + bytes([byte]) + b"z"
        usual, spaced = _DELTA % (0, text) + b"\n\n", _SPACED_DELTA % (0, text) + b"\n\n"
        quick = ASCII_TEXT_DELTA_END.fullmatch(usual, TEXT_DELTA_HEAD_SIZE)
        assert (quick is not None) == (0x20 <= byte < 0x7F and byte not in b'"\\'), byte
        assert _to_openai([start, usual, end]) == _to_openai([start, spaced, end]), byte
    unended = [start, _DELTA % (0, b"Hi"), b"\n", b"\n" + _DELTA % (0, b" there") + b"\n", b"\n", end]
    assert _to_openai(unended) == _to_openai([b"".join(unended)])


_USUAL_DELTA_END = b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":%s,' \
                   b'"stop_sequence":null},"usage":{"output_tokens":%s}}\n\n'
_SPACED_DELTA_END = b'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": %s, ' \
                    b'"stop_sequence": null}, "usage": {"output_tokens": %s}}\n\n'


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*(json.dumps(reason).encode() for reason in FINISH_REASONS), b'"other"', b'""', b"null",
                        b'"a\\"b"', b'"\\u0065nd_turn"', b'"end_turn\xc3"', b'"tool_use\x01"']),
       st.one_of(st.integers(min_value=-3, max_value=10**20).map(lambda count: str(count).encode()),
                 st.sampled_from([b"01", b"00", b"1.0", b"1e3", b"", b" 5", b'"5"', b"null", b"true", b"5}",
                                  b"999999999999999", b"1000000000000000", b"9007199254740993", b"\xc3"])),
       st.booleans())
def test_usual_message_deltas_are_read_as_parsing_reads_them(reason: bytes, count: bytes, trickled: bool) -> None:
    """A message_delta in Anthropic's usual form is read by its bytes; whatever its stop reason and
    count (not JSON, not UTF-8, out of bounds, escaped), the answer and usage are parsing's (the
    spaced form, always parsed), read whole or one event a read."""
    start = _anthropic_sse([_message_start(), *_text_block(0, ["Hi"])], compact=True)
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    usual, spaced = (start + form % (reason, count) + stop for form in (_USUAL_DELTA_END, _SPACED_DELTA_END))
    read = _one_by_one if trickled else (lambda sse: [sse])
    assert _fingerprint(_to_openai(read(usual))) == _fingerprint(_to_openai(read(spaced)))


@pytest.mark.parametrize("data", [b"data: ", b"data:", b"data:  ", b"data: \t"])
def test_a_message_start_reads_alike_however_its_data_line_starts(data: bytes) -> None:
    """The usual message_start's payload is cut out by its line (`data: `); other spacings go the
    general way: the answer is the same."""
    usual = _anthropic_sse(ANTHROPIC_STREAMS["text"], compact=True)
    other = usual.replace(b"event: message_start\ndata: ", b"event: message_start\n" + data, 1)
    assert other != usual or data == b"data: "
    for read in (lambda sse: [sse], _one_by_one):
        assert _fingerprint(_to_openai(read(other))) == _fingerprint(_to_openai(read(usual)))


def _one_by_one(sse: bytes) -> list[bytes]:
    """The events of `sse` one per read, as a trickled stream comes."""
    return [event + b"\n\n" for event in sse.split(b"\n\n")[:-1]]


# --- streams: OpenAI -> Anthropic -------------------------------------------------------------


def test_openai_text_stream_to_anthropic_events() -> None:
    out, usage = _to_anthropic([_openai_bytes("text")])
    events = _anthropic_events(out)
    assert events[0] == {"type": "message_start", "message": {
        "id": "chatcmpl-9abc", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 0}}}
    assert events[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [e["delta"]["text"] for e in events[2:5]] == ["Hello", ", wörld ☃", "!"]
    assert events[5:] == [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"input_tokens": 50, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100,
                   "output_tokens": 12}},
        {"type": "message_stop"}]
    assert (usage.input, usage.output, usage.cached) == (150, 12, 100)


def test_openai_parallel_tool_calls_become_consecutive_tool_use_blocks() -> None:
    events = _anthropic_events(_to_anthropic([_openai_bytes("parallel tools")])[0])
    kinds = [(e["type"], e.get("index")) for e in events]
    assert kinds[:3] == [("message_start", None), ("content_block_start", 0), ("content_block_delta", 0)]
    assert kinds.index(("content_block_stop", 0)) < kinds.index(("content_block_start", 1))
    assert kinds[-4:] == [("content_block_delta", 1), ("content_block_stop", 1), ("message_delta", None),
                          ("message_stop", None)]
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [{"type": "tool_use", "id": "call_A1", "name": "get_weather", "input": {}},
                      {"type": "tool_use", "id": "call_B2", "name": "get_time", "input": {}}]
    for index, arguments in ((0, '{"city":"Paris","unit":"celsius"}'), (1, '{"timezone":"Europe/Oslo"}')):
        assert "".join(e["delta"]["partial_json"] for e in events
                       if e["type"] == "content_block_delta" and e["index"] == index) == arguments
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_openai_switch_from_text_to_tools_closes_the_text_block() -> None:
    events = _anthropic_events(_to_anthropic([_openai_bytes("text then tools")])[0])
    assert [(e["type"], e.get("index")) for e in events if "content_block" in e["type"]][:4] == [
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0), ("content_block_start", 1)]
    assert events[4]["content_block"]["id"] == "functions_get_weather_0"


def test_openai_length_reasoning_and_stop_sequence_streams() -> None:
    assert _anthropic_events(_to_anthropic([_openai_bytes("length")])[0])[-2]["delta"]["stop_reason"] == "max_tokens"
    out, usage = _to_anthropic([_openai_bytes("reasoning then text")])
    events = _anthropic_events(out)
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] == ["thinking", "text"]
    assert [e["delta"] for e in events if e["type"] == "content_block_delta"] == [
        {"type": "thinking_delta", "thinking": "The user wants "}, {"type": "thinking_delta", "thinking": "a greeting."},
        {"type": "text_delta", "text": "Hi "}, {"type": "text_delta", "text": "there."}]
    assert events[-2]["usage"]["output_tokens_details"] == {"thinking_tokens": 20} and usage.reasoning == 20
    events = _anthropic_events(_to_anthropic([_openai_bytes("stop sequence")])[0])
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "4"}


def test_openai_calls_numbered_alike_or_interleaved_keep_their_own_blocks() -> None:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x":'}}
    second = {"index": 0, "id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}
    alike = _openai_sse([_chunk({"tool_calls": [first]}), _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                         _chunk({"tool_calls": [second]}), _chunk({}, "tool_calls")])
    message = _accumulate_anthropic(_anthropic_events(_to_anthropic([alike])[0]))
    assert [(b["id"], b["name"], b["input"]) for b in message["content"]] == [("call_1", "a", {"x": 1}),
                                                                               ("call_2", "b", {})]
    late = {"index": 0, "function": {"arguments": "2}"}}
    interleaved = _openai_sse([_chunk({"tool_calls": [first]}), _chunk({"tool_calls": [{**second, "index": 1}]}),
                               _chunk({"tool_calls": [late]}), _chunk({}, "tool_calls")])
    message = _accumulate_anthropic(_anthropic_events(_to_anthropic([interleaved])[0]))
    assert [(b["id"], b["input"]) for b in message["content"]] == [("call_1", {"x": 2}), ("call_2", {})]


def test_openai_error_event_becomes_an_anthropic_error_and_ends_the_stream() -> None:
    events = _anthropic_events(_to_anthropic([_openai_bytes("error")])[0])
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "The server had an error"}}


def test_openai_stream_cut_short_is_closed_well_formed() -> None:
    converter = OpenAIToAnthropicStream(Context(ANTHROPIC_CLIENT, MODEL))
    fed = converter.feed(_openai_bytes("cut"))
    assert b"message_stop" not in fed
    events = _anthropic_events(fed + converter.close())
    assert [e["type"] for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert _accumulate_anthropic(events)["content"] == [{"type": "text", "text": "Hello wor"}]


@pytest.mark.parametrize("name", COMPLETE_OPENAI)
def test_reassembled_anthropic_stream_equals_the_converted_buffered_answer(name: str) -> None:
    chunks = OPENAI_STREAMS[name][0]
    state = ChatCompletionStreamState()
    for chunk in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
    body = state.current_completion_snapshot.model_dump()
    body["choices"][0]["stop_reason"] = chunks[-2]["choices"][0].get("stop_reason")  # vLLM extra
    expected = openai_to_anthropic_response(body, Context(ANTHROPIC_CLIENT, MODEL))
    Message.model_validate(expected)
    got = _accumulate_anthropic(_anthropic_events(_to_anthropic([_openai_bytes(name)])[0]))
    for message in (got, expected):
        message.pop("stop_details", None)
    assert got == expected


# --- the official SDKs read the converted streams ---------------------------------------------


def _serving(body: bytes) -> httpx2.Client:
    answer = httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    return httpx2.Client(transport=httpx2.MockTransport(lambda request: answer))


def test_openai_sdk_reads_a_converted_anthropic_stream() -> None:
    client = openai.OpenAI(api_key="k", base_url="http://gateway/v1",
                           http_client=_serving(_to_openai([_anthropic_bytes("parallel tools")])[0]))
    with client.chat.completions.stream(model=MODEL, messages=[USER]) as stream:
        message = stream.get_final_completion().choices[0].message
    assert message.content == "Let me check both."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()] == [
        ("toolu_01A", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
        ("toolu_01B", "get_time", '{"timezone": "Europe/Oslo"}')]
    client = openai.OpenAI(api_key="k", base_url="http://gateway/v1",
                           http_client=_serving(_to_openai([_anthropic_bytes("error")])[0]))
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(client.chat.completions.create(model=MODEL, messages=[USER], stream=True))


def test_anthropic_sdk_reads_a_converted_openai_stream() -> None:
    client = anthropic.Anthropic(api_key="k", base_url="http://gateway",
                                 http_client=_serving(_to_anthropic([_openai_bytes("reasoning then text")])[0]))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[USER]) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.usage.input_tokens == 50 and message.usage.cache_read_input_tokens == 100
    client = anthropic.Anthropic(api_key="k", base_url="http://gateway",
                                 http_client=_serving(_to_anthropic([_openai_bytes("error")])[0]))
    with pytest.raises(anthropic.APIStatusError, match="The server had an error"), \
            client.messages.stream(model=MODEL, max_tokens=100, messages=[USER]) as stream:
        stream.get_final_message()


# --- streams: the same output however the upstream bytes are split -----------------------------

SPLIT_CASES: list[tuple[str, Callable[[list[bytes]], tuple[bytes, Usage]], Callable[[bool], bytes]]] = [
    *((f"anthropic {n}", _to_openai, lambda crlf, n=n: _anthropic_bytes(n, crlf)) for n in ANTHROPIC_STREAMS),
    *((f"anthropic {n} compact", _to_openai, lambda crlf, n=n: _anthropic_sse(ANTHROPIC_STREAMS[n], crlf, compact=True))
      for n in ANTHROPIC_STREAMS),
    *((f"openai {n}", _to_anthropic, lambda crlf, n=n: _openai_bytes(n, crlf)) for n in OPENAI_STREAMS),
]


def _anthropic_native(pieces: list[bytes]) -> tuple[bytes, Usage]:
    chain = plan("anthropic", "anthropic").build(Context({}, MODEL))
    return b"".join(chain.feed(p) for p in pieces) + chain.close(), chain.converters[1].usage


SPLIT_CASES.append(("anthropic native", _anthropic_native, lambda crlf: _anthropic_bytes("thinking then text", crlf)))


def test_sse_data_reader_gives_iter_data_payloads_for_any_split() -> None:
    stream = b"event: x\r\ndata: a\r\ndata: b\r\n\r\n: comment\r\n\r\nid: 1\r\ndata:c\r\n\r\ndata: d"
    expected = [*iter_data(stream.rsplit(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"), b"d"]
    assert expected == [b"a\nb", b"c", b"d"]
    for cut in range(len(stream) + 1):
        reader = SSEDataReader()
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) + reader.close() == expected, cut


def _fingerprint(result: tuple[bytes, Usage]) -> tuple[bytes, tuple[int, int, int, int, int]]:
    out, usage = result
    return out, (usage.input, usage.output, usage.cached, usage.cache_write, usage.reasoning)


@pytest.mark.parametrize(("name", "run", "stream"), SPLIT_CASES, ids=[case[0] for case in SPLIT_CASES])
def test_every_single_split_point_and_byte_by_byte_give_the_same_output(
        name: str, run: Callable[[list[bytes]], tuple[bytes, Usage]], stream: Callable[[bool], bytes]) -> None:
    data = stream(False)
    expected = _fingerprint(run([data]))
    assert expected[0]
    for cut in range(len(data) + 1):
        assert _fingerprint(run([data[:cut], data[cut:]])) == expected, cut
    assert _fingerprint(run([bytes([b]) for b in data])) == expected


def test_native_anthropic_chain_passes_events_through_and_records_usage() -> None:
    data = _anthropic_bytes("thinking then text")
    out, usage = _anthropic_native([data[:100], data[100:]])
    assert out == data
    assert (usage.input, usage.output, usage.cached, usage.cache_write, usage.reasoning) == (135, 30, 100, 10, 20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SPLIT_CASES), st.lists(st.integers(min_value=0, max_value=2**20), max_size=40), st.booleans())
def test_random_splits_give_the_same_output(case: tuple, cuts: list[int], crlf: bool) -> None:
    name, run, stream = case
    data = stream(crlf)
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    result = _fingerprint(run(pieces))
    if name == "anthropic native":  # passes bytes through, so its output keeps the CRLFs
        assert result == _fingerprint(run([data]))
    else:  # converted output does not depend on the upstream's line endings either
        assert result == _fingerprint(run([stream(False)]))
