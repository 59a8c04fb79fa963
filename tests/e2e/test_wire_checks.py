"""What clients send that conversion cannot carry, and what providers answer that clients branch on.

Over real sockets against the session gateway: wrong-typed fields, JSON nested deeper than
the gateway can re-encode and oversized `messages` are 400s in the client's own shape;
structured-output requests reach the provider in its own format; thinking survives a tool
loop; a provider's error type, code and param reach the client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from handlers.chat import MAX_MESSAGES
from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, estimating_count_tokens_gateway

CLAUDE = "claude/claude-sonnet-4-5"  # an Anthropic-format provider
GPT = "mock/gpt-4o-mini"  # an OpenAI-format provider
USER = {"role": "user", "content": "hi"}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
          "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def claude_client(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_TOKEN, max_retries=0)


def post(gateway: Gateway, path: str, body: bytes | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, answer = gateway.request("POST", path, raw, {"anthropic-version": "2023-06-01"})
    return status, json.loads(answer)


def error_message(path: str, answer: dict[str, Any]) -> str:
    """The message of an error in the shape the route's clients expect (asserting that shape)."""
    if path == "/v1/messages":
        assert answer["type"] == "error" and answer["error"]["type"], answer
        return answer["error"]["message"]
    assert set(answer["error"]) == {"message", "type", "param", "code"}, answer
    return answer["error"]["message"]


def assert_refused(gateway: Gateway, path: str, body: bytes | dict[str, Any], fragment: str) -> None:
    status, answer = post(gateway, path, body)
    assert status == 400, answer
    assert fragment in error_message(path, answer), answer
    assert "Traceback" not in gateway.log()


# --- JSON nested deeper than orjson writes (defect 9) -----------------------------------------


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


DEEP_CASES = [
    ("/v1/chat/completions", "fast",  # native: the document is re-encoded as a whole
     b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "metadata": %s}'),
    ("/v1/chat/completions", CLAUDE,  # converted: tool parameters are carried over
     b'{"model": "' + CLAUDE.encode() + b'", "messages": [{"role": "user", "content": "x"}], "tools": '
     b'[{"type": "function", "function": {"name": "f", "parameters": {"p": %s}}}]}'),
    ("/v1/messages", CLAUDE,
     b'{"model": "' + CLAUDE.encode() + b'", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],'
     b' "metadata": {"deep": %s}}'),
    ("/v1/messages", GPT,
     b'{"model": "' + GPT.encode() + b'", "max_tokens": 5, "messages": [{"role": "assistant", "content": '
     b'[{"type": "tool_use", "id": "t", "name": "f", "input": {"p": %s}}]}]}'),
    ("/v1/embeddings", "mock/text-embedding-3-small",  # forward: provider/model rewrites the body
     b'{"model": "mock/text-embedding-3-small", "input": %s}'),
    ("/v1/messages/count_tokens", "claude/claude-sonnet-4-5",
     b'{"model": "claude/claude-sonnet-4-5", "messages": [{"role": "user", "content": %s}]}'),
]


@pytest.mark.parametrize("depth", [300, 1000])
@pytest.mark.parametrize(("path", "model", "template"), DEEP_CASES,
                         ids=[f"{path}-{model}" for path, model, _ in DEEP_CASES])
def test_json_too_deep_to_relay_is_a_400(gateway: Gateway, path: str, model: str, template: bytes,
                                         depth: int) -> None:
    shape = "/v1/messages" if path.startswith("/v1/messages") else path
    status, answer = post(gateway, path, template % nested(depth))
    assert status == 400, answer
    assert "levels deep" in error_message(shape, answer)
    assert "Traceback" not in gateway.log()


def test_json_past_the_parser_depth_is_a_400(gateway: Gateway) -> None:
    status, answer = post(gateway, "/v1/embeddings", b'{"model": "mock/x", "input": %s}' % nested(1100))
    assert status == 400 and "not valid JSON" in error_message("/v1/embeddings", answer)


# --- wrong-typed fields (defect 11) -----------------------------------------------------------

OPENAI_BASE: dict[str, Any] = {"model": CLAUDE, "messages": [USER]}
ANTHROPIC_BASE: dict[str, Any] = {"model": GPT, "max_tokens": 20, "messages": [USER]}
TOOL_TURN_OPENAI = [USER, {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
TOOL_TURN_ANTHROPIC = [USER, {"role": "assistant", "content": [
    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]

# (field path, wrong values, what the message names); a path step that is an int indexes a list.
OPENAI_FIELDS: list[tuple[tuple[Any, ...], list[Any], str]] = [
    (("reasoning_effort",), [["high"], {"level": "high"}, 3, True, "ultra"], "reasoning_effort"),
    (("response_format",), ["json", [], {"type": 1}, {"type": ["json_schema"]}], "response_format"),
    (("response_format", "json_schema"), ["s", [], {"name": "x"}, {"name": "x", "schema": "s"}], "json_schema"),
    (("user",), [5, ["u"], {"id": "u"}], "'user'"),
    (("parallel_tool_calls",), ["no", 1, []], "parallel_tool_calls"),
    (("tools",), ["get_weather", {"type": "function"}], "tools"),
    (("tools", 0, "function", "description"), [5, [], {}], "description"),
    (("tools", 0, "function", "parameters"), ["object", [], 7], "parameters"),
    (("tool_choice",), [5, [], {"type": []}, {"type": "function", "function": []}], "tool_choice"),
    (("stop",), [5, [1], {"s": 1}], "stop sequences"),
    (("stream_options",), ["usage", [], 1], "stream_options"),
    (("stream_options", "include_usage"), ["yes", 1], "include_usage"),
    (("temperature",), ["hot", [], {}], "temperature"),
    (("max_tokens",), ["9", [9], {}], "max_tokens"),
    (("messages", 0, "content"), [5, {"text": "x"}, [5], [{"type": []}]], "messages[0]"),
    (("messages", 0, "role"), [[], {}, 5], "messages[0]"),
    (("messages", 1, "tool_calls"), ["c1", {"id": "c1"}, [5]], "messages[1]"),
    (("messages", 1, "tool_calls", 0, "function", "arguments"), [5, ["{}"]], "arguments"),
    (("messages", 1, "thinking_blocks"), ["t", {}, [5], [{"type": "thinking", "thinking": "t"}]],
     "thinking_blocks"),
    (("messages", 2, "tool_call_id"), [5, []], "tool_call_id"),
]
ANTHROPIC_FIELDS: list[tuple[tuple[Any, ...], list[Any], str]] = [
    (("output_config",), ["high", [], 5], "output_config"),
    (("output_config", "effort"), [["high"], {"level": "high"}, "ultra", 5], "output_config.effort"),
    (("output_config", "format"), ["json", [], {"type": "json_schema"}, {"type": "json_schema", "schema": []},
                                   {"type": "json_object"}], "output_config.format"),
    (("thinking",), ["on", [], 5], "thinking"),
    (("thinking", "type"), [[], {}, "sometimes"], "thinking.type"),
    (("thinking", "budget_tokens"), ["lots", [], 0, True], "budget_tokens"),
    (("metadata",), ["m", [], 5], "metadata"),
    (("metadata", "user_id"), [5, [], {}], "user_id"),
    (("system",), [5, {"text": "x"}, [5]], "system"),
    (("tools",), ["get_weather", {"name": "x"}], "tools"),
    (("tools", 0, "description"), [5, []], "description"),
    (("tools", 0, "input_schema"), ["object", [], 7], "input_schema"),
    (("tool_choice",), ["auto", [], {"type": {}}], "tool_choice"),
    (("tool_choice", "disable_parallel_tool_use"), ["yes", 1, []], "disable_parallel_tool_use"),
    (("stop_sequences",), [5, [1]], "stop sequences"),
    (("top_p",), ["high", []], "top_p"),
    (("messages", 0, "content"), [5, {"text": "x"}, [5]], "messages[0]"),
    (("messages", 1, "content", 0, "input"), ["{}", [], 5], "input"),
    (("messages", 2, "content", 0, "is_error"), ["yes", 1, []], "is_error"),
    (("messages", 2, "content", 0, "tool_use_id"), [5, []], "tool_use_id"),
]


def with_field(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the field at `path` set (missing objects on the way created)."""
    doc = json.loads(json.dumps(base))
    holder = doc
    for step in path[:-1]:
        if isinstance(step, str) and not isinstance(holder.get(step), dict | list):
            holder[step] = {}
        holder = holder[step]
    holder[path[-1]] = value
    return doc


def _cases(fields: list[tuple[tuple[Any, ...], list[Any], str]]) -> list[Any]:
    return [pytest.param(path, value, fragment, id=f"{'.'.join(map(str, path))}={json.dumps(value)}")
            for path, values, fragment in fields for value in values]


def _openai_base(path: tuple[Any, ...]) -> dict[str, Any]:
    base = {**OPENAI_BASE, "tools": [WEATHER]}
    if path[0] == "messages" and path[1] != 0:
        base["messages"] = TOOL_TURN_OPENAI
    if path[0] == "response_format" and len(path) > 1:
        base["response_format"] = {"type": "json_schema"}
    return base


def _anthropic_base(path: tuple[Any, ...]) -> dict[str, Any]:
    base = {**ANTHROPIC_BASE, "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    if path[0] == "messages" and path[1] != 0:
        base["messages"] = TOOL_TURN_ANTHROPIC
    if path[:2] == ("thinking", "budget_tokens"):
        base["thinking"] = {"type": "enabled"}
    if path[0] == "tool_choice" and len(path) > 1:
        base["tool_choice"] = {"type": "auto"}
    return base


@pytest.mark.parametrize(("path", "value", "fragment"), _cases(OPENAI_FIELDS))
def test_openai_client_wrong_types_for_an_anthropic_provider(gateway: Gateway, path: tuple[Any, ...],
                                                             value: Any, fragment: str) -> None:
    assert_refused(gateway, "/v1/chat/completions", with_field(_openai_base(path), path, value), fragment)


@pytest.mark.parametrize(("path", "value", "fragment"), _cases(ANTHROPIC_FIELDS))
def test_anthropic_client_wrong_types_for_an_openai_provider(gateway: Gateway, path: tuple[Any, ...],
                                                             value: Any, fragment: str) -> None:
    assert_refused(gateway, "/v1/messages", with_field(_anthropic_base(path), path, value), fragment)


def test_conversion_refusals_are_final_and_say_why(gateway: Gateway) -> None:
    """A refusal names the field; it is not a 502 nor a walk to the next target."""
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model=CLAUDE, messages=[USER],
                                                 extra_body={"reasoning_effort": ["high"]})
    assert "'reasoning_effort' must be one of" in caught.value.message
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude_client(gateway).messages.create(model=GPT, max_tokens=5, messages=[USER],
                                               extra_body={"output_config": {"effort": {"x": 1}}})
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "'output_config.effort' must be one of" in refused.value.body["error"]["message"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5000) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "auto", "none", "high", "text", "json_schema", "json_object", "tool",
                       "function", "user", "assistant", "thinking", "enabled", "tool_use", "image"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "text", "name", "schema", "json_schema", "function", "effort", "format",
                         "content", "role", "input", "id", "budget_tokens", "arguments", "source"]),
        inner, max_size=3),
    max_leaves=8,
)
OPENAI_KEYS = ["reasoning_effort", "response_format", "tools", "tool_choice", "parallel_tool_calls", "user",
               "stop", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stream"]
ANTHROPIC_KEYS = ["thinking", "output_config", "output_format", "tools", "tool_choice", "metadata", "system",
                  "stop_sequences", "temperature", "top_p", "max_tokens", "stream"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(openai_fields=st.dictionaries(st.sampled_from(OPENAI_KEYS), JSON_VALUES, max_size=4),
       anthropic_fields=st.dictionaries(st.sampled_from(ANTHROPIC_KEYS), JSON_VALUES, max_size=4),
       message=st.dictionaries(st.sampled_from(["role", "content", "tool_calls", "thinking_blocks"]),
                               JSON_VALUES, max_size=3))
def test_fuzzed_requests_never_fail_inside_the_gateway(gateway: Gateway, openai_fields: dict[str, Any],
                                                       anthropic_fields: dict[str, Any],
                                                       message: dict[str, Any]) -> None:
    for path, base, fields in (("/v1/chat/completions", OPENAI_BASE, openai_fields),
                               ("/v1/messages", ANTHROPIC_BASE, anthropic_fields)):
        doc = {**base, **fields, "messages": [USER, {"role": "user", **message}]}
        doc["stream"] = False  # a streamed 200 is fine too, but slower to read
        status, answer = post(gateway, path, doc)
        assert status in (200, 400), (doc, answer)
        if status == 400:
            error_message(path, answer)
    assert "Traceback" not in gateway.log()


# --- bounded messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_messages_past_the_bound_are_refused(gateway: Gateway, path: str) -> None:
    turn = b'{"role": "user", "content": "x"},'
    body = (b'{"model": "fast", "max_tokens": 5, "messages": [' + turn * MAX_MESSAGES
            + b'{"role": "user", "content": "x"}]}')
    assert_refused(gateway, path, body, f"at most {MAX_MESSAGES}")


# --- structured output (defects 17, 18) ---------------------------------------------------------


class Answer(BaseModel):
    answer: str


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_reaches_an_anthropic_provider_as_output_config(gateway: Gateway, mock: Mock,
                                                                    stream: bool) -> None:
    client = gateway.openai()
    if stream:
        with client.chat.completions.stream(model=CLAUDE, messages=[USER], response_format=Answer) as events:
            parsed = events.get_final_completion().choices[0].message.parsed
    else:
        parsed = client.chat.completions.parse(model=CLAUDE, messages=[USER], response_format=Answer)
        parsed = parsed.choices[0].message.parsed
    assert parsed == Answer(answer="mock")
    sent = json.loads(mock.requests()[-1]["body"])
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert sent["output_config"]["format"]["schema"]["required"] == ["answer"]


def test_json_object_is_refused_for_an_anthropic_provider(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model=CLAUDE, messages=[USER],
                                                 response_format={"type": "json_object"})
    assert "json_object" in caught.value.message and "json_schema" in caught.value.message


def test_output_config_format_reaches_an_openai_provider_as_response_format(gateway: Gateway, mock: Mock) -> None:
    answer = claude_client(gateway).messages.create(
        model=GPT, max_tokens=50, messages=[USER],
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"})
    assert json.loads(answer.content[0].text) == {"answer": "mock"}
    sent = json.loads(mock.requests()[-1]["body"])
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}}
    assert sent["reasoning_effort"] == "low"


# --- thinking in a tool loop (defect 19) --------------------------------------------------------


def test_thinking_survives_a_tool_loop_with_an_openai_client(gateway: Gateway, mock: Mock) -> None:
    client = gateway.openai()
    first = client.chat.completions.create(model=CLAUDE + "-thinking-tools", messages=[USER], tools=[WEATHER],
                                           reasoning_effort="low")
    message = first.choices[0].message
    assert message.tool_calls and message.model_extra["thinking_blocks"][0]["signature"]
    results = [{"role": "tool", "tool_call_id": call.id, "content": "sunny"} for call in message.tool_calls]

    # The assistant message sent back as the SDK gave it: its signed thinking leads the turn.
    answer = client.chat.completions.create(model=CLAUDE + "-thinking", tools=[WEATHER], reasoning_effort="low",
                                            messages=[USER, message.model_dump(exclude_none=True), *results])
    assert answer.choices[0].message.content
    sent = json.loads(mock.requests()[-1]["body"])
    assert sent["thinking"]["type"] == "enabled"
    assert [block["type"] for block in sent["messages"][1]["content"]] == ["thinking", "tool_use", "tool_use"]

    # Only the standard fields sent back: thinking is left off for this request, not refused.
    plain = {"role": "assistant", "content": None,
             "tool_calls": [call.model_dump() for call in message.tool_calls]}
    answer = client.chat.completions.create(model=CLAUDE + "-thinking", tools=[WEATHER], reasoning_effort="low",
                                            messages=[USER, plain, *results])
    assert answer.choices[0].message.content
    sent = json.loads(mock.requests()[-1]["body"])
    assert "thinking" not in sent
    assert [block["type"] for block in sent["messages"][1]["content"]] == ["tool_use", "tool_use"]


def test_thinking_survives_a_streamed_tool_loop(gateway: Gateway, mock: Mock) -> None:
    client = gateway.openai()
    with client.chat.completions.stream(model=CLAUDE + "-thinking-tools", messages=[USER], tools=[WEATHER],
                                        reasoning_effort="low") as stream:
        message = stream.get_final_completion().choices[0].message
    assert message.tool_calls and message.model_extra["thinking_blocks"][0]["signature"]
    results = [{"role": "tool", "tool_call_id": call.id, "content": "sunny"} for call in message.tool_calls]
    history = [USER, message.model_dump(exclude_none=True, exclude={"parsed"}), *results]
    with client.chat.completions.stream(model=CLAUDE + "-thinking", tools=[WEATHER], reasoning_effort="low",
                                        messages=history) as stream:
        assert stream.get_final_completion().choices[0].message.content
    sent = json.loads(mock.requests()[-1]["body"])
    assert sent["thinking"]["type"] == "enabled"
    assert sent["messages"][1]["content"][0]["type"] == "thinking"


def test_mock_refuses_thinking_when_the_tool_turn_lacks_it(mock: Mock) -> None:
    """The rule the gateway must respect is Anthropic's; the mock enforces it the same way."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        mock.anthropic().messages.create(
            model="mock-model", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024},
            messages=TOOL_TURN_ANTHROPIC)
    assert "must start with a thinking block" in caught.value.body["error"]["message"]


# --- provider errors as the provider gave them (defect 20) --------------------------------------


def test_openai_provider_error_code_and_param_reach_openai_clients(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model=GPT + "-fault-400", messages=[USER])
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "messages"
    assert caught.value.type == "invalid_request_error"
    assert caught.value.body["message"] == "mock fault: HTTP 400"  # not prefixed with the target


def test_anthropic_provider_error_type_reaches_both_clients(gateway: Gateway) -> None:
    model = CLAUDE + "-fault-402"
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude_client(gateway).messages.create(model=model, max_tokens=5, messages=[USER])
    assert caught.value.status_code == 402
    assert caught.value.body == {"type": "error", "error": {"type": "billing_error",
                                                            "message": "mock fault: HTTP 402"}}
    with pytest.raises(openai.APIStatusError) as raised:
        gateway.openai().chat.completions.create(model=model, messages=[USER])
    assert raised.value.status_code == 402 and raised.value.type == "billing_error"


def test_openai_provider_error_type_reaches_anthropic_clients(gateway: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_client(gateway).messages.create(model=GPT + "-fault-400", max_tokens=5, messages=[USER])
    assert caught.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "mock fault: HTTP 400"}}


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_provider_errors_are_scrubbed_of_the_gateway_key(gateway: Gateway, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model=model + "-echokey-fault-400", messages=[USER])
    assert caught.value.body["message"] == "mock fault: HTTP 400 for key [redacted]"
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude_client(gateway).messages.create(model=model + "-echokey-fault-400", max_tokens=5, messages=[USER])
    assert refused.value.body["error"]["message"] == "mock fault: HTTP 400 for key [redacted]"
    assert PROVIDER_KEY not in gateway.log()


@pytest.mark.parametrize("depth", [300, 1000])
def test_json_too_deep_for_the_token_estimate_is_a_400(mock: Mock, tmp_path: Path, depth: int) -> None:
    gateway = estimating_count_tokens_gateway(mock, tmp_path)
    try:
        body = b'{"model": "m", "messages": [{"role": "user", "content": %s}]}' % nested(depth)
        status, answer = post(gateway, "/v1/messages/count_tokens", body)
        assert status == 400 and "levels deep" in error_message("/v1/messages", answer)
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log()


@pytest.mark.parametrize("model", ["mock/gpt-badusage", "claude/claude-badusage"])
@pytest.mark.parametrize("stream", [False, True])
def test_usage_counts_no_provider_should_send_are_taken_as_none(gateway: Gateway, model: str,
                                                                 stream: bool) -> None:
    """An upstream whose usage says -7 tokens, "many", 1e308 or 2**60 (and a string where its
    details belong): the answer reaches the client, and the gateway counts nothing it cannot
    believe (it raised inside the handler: a 500 for a good answer, a traceback in the log)."""
    client = gateway.openai()
    if stream:
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
    counted = [line for line in gateway.metrics().splitlines()
               if line.startswith("gateway_tokens_total") and "badusage" in line]
    assert counted == []  # a kind's series shows once it has counted a token
