"""The MCP tool loop through a real gateway: a real MCP server (tests/mcp_server.py), the mock
provider scripted to call its tools, and the official SDKs as clients."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.support import CLIENT_TOKEN, Gateway, McpTestServer, Mock, free_port, metric, own_gateway

ROUTES = """
redaction:
  policies:
    private: {presets: [pii], answers: false}  # the tool results alone carry the address upstream
mcp_servers:
  tools: {url: "%(tools)s", timeout: 2s}
  patient: {url: "%(tools)s", timeout: 60s}
  down: {url: "http://127.0.0.1:%(closed)d/mcp"}
agents:
  loop_openai: {models: [mock/loop-openai], mcp: {servers: [tools, down]}}
  loop_claude: {models: [claude/loop-claude], mcp: {servers: [tools]}}
  mixed: {models: [mock/loop-mixed], mcp: {servers: [tools]}}
  twice: {models: [mock/loop-breaks, claude/loop-steady], mcp: {servers: [tools]}}
  limited: {models: [mock/loop-endless], mcp: {servers: [tools], max_iterations: 2}}
  hurried: {models: [mock/loop-slow], mcp: {servers: [tools], deadline: 1s}}
  gated: {models: [claude/loop-gated], mcp: {servers: [patient]}}
  private: {models: [mock/loop-private], redaction: private, mcp: {servers: [tools]}}
  narrow: {models: [{target: mock/loop-narrow, context_window: 400}], mcp: {servers: [tools]}}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
  - {match: POST /v1/messages, handler: chat, ingress: anthropic}
  - {match: GET /statsz, handler: statsz}
  - {match: GET /metrics, handler: metrics}
  - {match: GET /healthz, handler: health}
"""
SECRETS = f"client_token: {CLIENT_TOKEN}\nredaction_key: {'k' * 40}\n"
ECHO = [{"name": "tools__echo", "arguments": {"text": "hi"}}]
ASK = [{"role": "user", "content": "say hi through the tool"}]


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def looping(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    server = McpTestServer()
    directory = tmp_path_factory.mktemp("mcp-loop")
    try:
        routes = ROUTES % {"tools": server.url, "closed": free_port()}
        with own_gateway(mock, directory, routes, SECRETS) as gateway:
            until(lambda: all(server["connected"] for name, server in mcp_status(gateway).items()
                              if name != "down"))
            yield gateway
    finally:
        server.stop()


def mcp_status(gateway: Gateway) -> dict[str, Any]:
    return json.loads(gateway.get("/statsz")[2])["mcp"]


def claude_client(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_TOKEN, max_retries=0)


def sent_to(mock: Mock, model: str) -> list[dict[str, Any]]:
    """The request bodies the mock got for `model`, in order."""
    bodies = [json.loads(r["body"]) for r in mock.requests() if r.get("body") and model in r["body"]]
    return [b for b in bodies if b.get("model") == model]


def ask(gateway: Gateway, client: str, agent: str, stream: bool, **more: Any) -> tuple[str, Any]:
    """One request through the agent's loop: the answer's text, and the answer (or its final chunk)."""
    if client == "openai":
        sdk = gateway.openai()
        if not stream:
            answer = sdk.chat.completions.create(model=agent, messages=ASK, **more)
            return answer.choices[0].message.content or "", answer
        chunks = list(sdk.chat.completions.create(
            model=agent, messages=ASK, stream=True, stream_options={"include_usage": True}, **more))
        assert len({chunk.id for chunk in chunks}) == 1
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks[-1]
    claude = claude_client(gateway)
    if not stream:
        message = claude.messages.create(model=agent, max_tokens=256, messages=ASK, **more)
        return "".join(b.text for b in message.content if b.type == "text"), message
    with claude.messages.stream(model=agent, max_tokens=256, messages=ASK, **more) as events:
        final = events.get_final_message()
    return "".join(b.text for b in final.content if b.type == "text"), final


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("agent", ["loop_openai", "loop_claude"])
def test_a_two_round_loop_answers_with_the_tool_result(
    looping: Gateway, mock: Mock, agent: str, client: str, stream: bool
) -> None:
    model = "loop-openai" if agent == "loop_openai" else "loop-claude"
    mock.script_fault(model, tool_calls=ECHO)
    mock.clear()
    before = metric(looping.metrics(), f'gateway_mcp_loop_iterations_total{{agent="{agent}"}}')
    text, answer = ask(looping, client, agent, stream)
    assert "echo: hi" in text and text.startswith("Tool result")
    first, second = sent_to(mock, model)  # two rounds, streamed when the client's is
    assert bool(first.get("stream")) is stream
    names = [t.get("name") or t["function"]["name"] for t in first["tools"]]
    assert "tools__echo" in names and not any(n.startswith("down__") for n in names)
    assert "echo: hi" in json.dumps(second["messages"][-1])
    usage = answer.usage
    if client == "openai":
        assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    else:
        assert usage.input_tokens > 0 and usage.output_tokens > 0
    after = metric(looping.metrics(), f'gateway_mcp_loop_iterations_total{{agent="{agent}"}}')
    assert after - before == 2
    mock.script_fault(model, recover=True)


def test_usage_is_summed_over_rounds(looping: Gateway, mock: Mock) -> None:
    mock.script_fault("loop-openai", tool_calls=ECHO)
    _, looped = ask(looping, "openai", "loop_openai", False)
    mock.script_fault("loop-openai", recover=True)
    direct = looping.openai().chat.completions.create(model="mock/loop-openai", messages=ASK)
    assert looped.usage.prompt_tokens > direct.usage.prompt_tokens  # two prompts, the second longer


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_mixed_turn_returns_the_clients_calls_and_runs_none(looping: Gateway, mock: Mock, client: str) -> None:
    calls_before = mcp_status(looping)["tools"]["calls"]
    mock.script_fault("loop-mixed", tool_calls=[*ECHO, {"name": "get_time", "arguments": {"zone": "UTC"}}])
    if client == "openai":
        tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
        answer = looping.openai().chat.completions.create(model="mixed", messages=ASK, tools=[tool])
        calls = answer.choices[0].message.tool_calls
        assert answer.choices[0].finish_reason == "tool_calls"
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_time", {"zone": "UTC"})]
    else:
        tool = {"name": "get_time", "input_schema": {"type": "object"}}
        message = claude_client(looping).messages.create(
            model="mixed", max_tokens=256, messages=ASK, tools=[tool])  # type: ignore[list-item]
        assert message.stop_reason == "tool_use"
        uses = [b for b in message.content if b.type == "tool_use"]
        assert [(b.name, b.input) for b in uses] == [("get_time", {"zone": "UTC"})]
    assert mcp_status(looping)["tools"]["calls"] == calls_before
    mock.script_fault("loop-mixed", recover=True)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_streamed_mixed_turn_shows_only_the_clients_calls(looping: Gateway, mock: Mock, client: str) -> None:
    mock.script_fault("loop-mixed", tool_calls=[*ECHO, {"name": "get_time", "arguments": {"zone": "UTC"}}])
    if client == "openai":
        tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
        chunks = list(looping.openai().chat.completions.create(
            model="mixed", messages=ASK, tools=[tool], stream=True))
        deltas = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
        assert {d.index for d in deltas} == {0} and [d.function.name for d in deltas if d.function.name] == ["get_time"]
        assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"zone": "UTC"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    else:
        tool = {"name": "get_time", "input_schema": {"type": "object"}}
        with claude_client(looping).messages.stream(
                model="mixed", max_tokens=256, messages=ASK, tools=[tool]) as events:  # type: ignore[list-item]
            message = events.get_final_message()
        assert message.stop_reason == "tool_use"
        assert [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in message.content] == [
            ("tool_use", "get_time", {"zone": "UTC"})]
    mock.script_fault("loop-mixed", recover=True)


def test_a_side_effect_tool_runs_once_when_the_next_round_falls_back(looping: Gateway, mock: Mock) -> None:
    count = [{"name": "tools__count", "arguments": {}}]
    mock.script_fault("loop-breaks", tool_calls=count, after_result="fail")  # 503 once the tool ran
    mock.script_fault("loop-steady", tool_calls=count)
    mock.clear()
    text, _ = ask(looping, "openai", "twice", False)
    assert "count 1" in text  # the second round, answered by the next target, quotes the one run
    assert len(sent_to(mock, "loop-breaks")) == 2 and len(sent_to(mock, "loop-steady")) == 1
    assert metric(looping.metrics(), 'gateway_mcp_tool_calls_total{outcome="ok",server="tools",tool="count"}') == 1
    mock.script_fault("loop-breaks", recover=True)
    mock.script_fault("loop-steady", recover=True)


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_the_iteration_limit_yields_a_final_answer(looping: Gateway, mock: Mock, stream: bool) -> None:
    mock.script_fault("loop-endless", tool_calls=ECHO, after_result="call")  # never stops calling
    mock.clear()
    stops = 'gateway_mcp_loop_stops_total{agent="limited",reason="max_iterations"}'
    before = metric(looping.metrics(), stops)
    text, _ = ask(looping, "openai", "limited", stream)
    assert "echo: hi" in text
    rounds = sent_to(mock, "loop-endless")
    assert len(rounds) == 3 and rounds[-1]["tool_choice"] == "none"
    assert metric(looping.metrics(), stops) - before == 1
    mock.script_fault("loop-endless", recover=True)


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_the_deadline_yields_a_clear_error(looping: Gateway, mock: Mock, stream: bool) -> None:
    mock.script_fault("loop-slow", tool_calls=[{"name": "tools__slow", "arguments": {"seconds": 5}}])
    if not stream:
        with pytest.raises(openai.APIStatusError) as raised:
            ask(looping, "openai", "hurried", False)
        assert raised.value.status_code == 504 and "deadline of 1s" in raised.value.message
    else:
        status, _, body = looping.request(
            "POST", "/v1/chat/completions",
            json.dumps({"model": "hurried", "messages": ASK, "stream": True}).encode(),
            {"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json"})
        assert status == 200  # the stream began with the first round, then keep-alives while the tool ran
        assert b"\n\n: keep-alive\n\n" in body and b"deadline of 1s" in body.split(b": keep-alive")[-1]
        assert b"[DONE]" not in body
    mock.script_fault("loop-slow", recover=True)


def test_a_streamed_loop_sends_keep_alives_while_tools_run_and_one_terminator(
    looping: Gateway, mock: Mock
) -> None:
    mock.script_fault("loop-openai", tool_calls=[{"name": "tools__slow", "arguments": {"seconds": 0.2}}])
    status, headers, body = looping.request(
        "POST", "/v1/chat/completions",
        json.dumps({"model": "loop_openai", "messages": ASK, "stream": True}).encode(),
        {"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [e for e in body.split(b"\n\n") if e]
    assert b": keep-alive" in events and events.count(b"data: [DONE]") == 1 and events[-1] == b"data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events if e.startswith(b"data: {")]
    assert len({chunk["id"] for chunk in chunks}) == 1  # one response id over both rounds
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in chunks if c["choices"])  # ours stay in
    assert "slept 0.2" in "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    mock.script_fault("loop-openai", recover=True)


def test_a_tool_that_hangs_is_cut_at_its_timeout_and_the_model_told(looping: Gateway, mock: Mock) -> None:
    mock.script_fault("loop-openai", tool_calls=[{"name": "tools__hang", "arguments": {}}])
    text, _ = ask(looping, "openai", "loop_openai", False)
    assert "timed out after 2s" in text  # the error result, quoted by the model's next round
    mock.script_fault("loop-openai", recover=True)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_stream_delivers_the_first_rounds_text_before_the_tool_finishes(
    looping: Gateway, mock: Mock, tmp_path: Path, client: str
) -> None:
    signal = tmp_path / f"go-{client}"
    call = [{"name": "patient__signal", "arguments": {"path": str(signal)}}]
    mock.script_fault("loop-gated", tool_calls=call, say="Let me check.")
    texts: list[str] = []
    if client == "openai":
        for chunk in looping.openai().chat.completions.create(model="gated", messages=ASK, stream=True):
            texts += [chunk.choices[0].delta.content or ""] if chunk.choices else []
            if "check." in "".join(texts) and not signal.exists():
                signal.touch()  # the tool has waited for this: the first round's text came first
    else:
        with claude_client(looping).messages.stream(model="gated", max_tokens=256, messages=ASK) as events:
            for event in events:
                if event.type == "text":
                    texts.append(event.text)
                    if "check." in "".join(texts) and not signal.exists():
                        signal.touch()
            final = events.get_final_message()
        assert [b.type for b in final.content] == ["text", "text"]
    text = "".join(texts)
    assert text.startswith("Let me check.") and f"signalled go-{client}" in text
    mock.script_fault("loop-gated", recover=True)


def test_tool_results_are_redacted_before_the_next_round(looping: Gateway, mock: Mock) -> None:
    email = "jane.doe@example.org"
    mock.script_fault("loop-private", tool_calls=[{"name": "tools__echo", "arguments": {"text": f"mail {email}"}}])
    mock.clear()
    ask(looping, "openai", "private", False)
    first, second = sent_to(mock, "loop-private")
    assert "echo: mail" in json.dumps(second["messages"][-1]) and email not in json.dumps(second)
    mock.script_fault("loop-private", recover=True)


def test_a_tool_result_that_outgrows_every_window_ends_the_loop_with_the_numbers(
    looping: Gateway, mock: Mock
) -> None:
    """The overflow guard runs on every round: the first prompt fits, the tool's long result does not."""
    mock.script_fault("loop-narrow", tool_calls=[{"name": "tools__echo", "arguments": {"text": "word " * 400}}])
    mock.clear()
    with pytest.raises(openai.BadRequestError) as refused:
        looping.openai().chat.completions.create(model="narrow", messages=ASK)
    assert refused.value.body["code"] == "context_length_exceeded"
    assert "context window 400" in refused.value.body["message"]
    assert len(sent_to(mock, "loop-narrow")) == 1  # the grown prompt never left the gateway
