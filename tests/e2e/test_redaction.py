"""Redaction end to end: the official SDKs against a real gateway in front of the mock provider.

Requests: the mock's request log shows what left the gateway, with every secret replaced by
its label, the same secret by the same label. Answers: the mock's `echosystem` models answer
with the system prompt (which the default policy leaves alone in requests), so the upstream
itself sends a secret, as text or as tool-call arguments, streamed or not; the client gets
the label.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, access_line, metric, write_config

ROUTES = f"""
version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
  drain_timeout: 5s
secrets: secrets.yaml
providers:
  mock: {{url: "${{MOCK_URL}}/v1", format: openai, api_key: {PROVIDER_KEY}}}
  claude: {{url: "${{MOCK_URL}}/v1", format: anthropic, api_key: {PROVIDER_KEY}}}
redaction:
  policies:
    default: {{presets: [secrets, pii]}}
    strict: {{presets: [secrets], action: block}}
agents:
  guarded: {{models: [mock/gpt-4o-mini], redaction: strict}}
  plain: {{models: [mock/gpt-4o-mini]}}
breakers: {{enabled: false}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat, redaction: default}}
  - {{match: POST /v1/messages, handler: chat, ingress: anthropic, redaction: default}}
  - {{match: POST /v2/chat/completions, handler: chat}}
  - {{match: POST /v1/embeddings, handler: forward, redaction: default}}
  - {{match: POST /v1/files, handler: forward, redaction: default}}
  - {{match: "GET /v1/files/{{id}}", handler: forward, redaction: default}}
  - {{match: POST /v1/messages/count_tokens, handler: count_tokens, ingress: anthropic, providers: [claude],
      redaction: default}}
  - {{match: GET /metrics, handler: metrics}}
  - {{match: GET /statsz, handler: statsz}}
  - {{match: GET /healthz, handler: health}}
"""
SECRETS = f"client_token: {CLIENT_TOKEN}\nredaction_key: {'k' * 40}\n"

OPENAI_KEY = "sk-proj-" + "Ab3dEfGh1jKlMn0pQrStUvWxYz12345678AbCdEfGhIjKlMnOp"
GITHUB = "ghp_" + "a1B2c3D4e5" * 4
EMAIL = "jane.doe@example.org"
LABEL = re.compile(r"\[REDACTED:([a-z_]+):([0-9a-f]{8})\]")


@pytest.fixture(scope="module")
def redacting(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(write_config(tmp_path_factory.mktemp("redaction"), ROUTES, SECRETS),
                      env={"MOCK_URL": mock.url})
    yield gateway
    assert gateway.stop() == 0, gateway.log()
    log = gateway.log()
    assert "Traceback" not in log, log
    for secret in (OPENAI_KEY, GITHUB, EMAIL):
        assert secret not in log


def _sent(mock: Mock, marker: str) -> str:
    """The body the mock received for the request that carried `marker`."""
    bodies = [e.get("body", "") for e in mock.requests() if marker in e.get("body", "")]
    assert len(bodies) == 1, bodies
    return bodies[0]


def _labels(text: str, kind: str) -> list[str]:
    return [m.group(0) for m in LABEL.finditer(text) if m.group(1) == kind]


def test_openai_request_is_redacted_everywhere_with_stable_labels(redacting: Gateway, mock: Mock) -> None:
    marker = uuid.uuid4().hex
    client = redacting.openai()
    client.chat.completions.create(model="mock/gpt-4o-mini", messages=[
        {"role": "system", "content": f"system keeps {marker}"},
        {"role": "user", "content": f"my key is {OPENAI_KEY}, mail {EMAIL}"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "store", "arguments": json.dumps({"token": GITHUB, "key": OPENAI_KEY})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"stored {GITHUB}"},
        {"role": "user", "content": [{"type": "text", "text": f"again {OPENAI_KEY}"}]},
    ])
    body = _sent(mock, marker)
    for secret in (OPENAI_KEY, GITHUB, EMAIL):
        assert secret not in body
    openai_labels = _labels(body, "openai_key")
    assert len(openai_labels) == 3 and len(set(openai_labels)) == 1  # the same secret, the same label
    assert len(set(_labels(body, "github_token"))) == 1 and len(_labels(body, "github_token")) == 2
    assert _labels(body, "email")
    sent = json.loads(body)
    json.loads(sent["messages"][2]["tool_calls"][0]["function"]["arguments"])  # still valid JSON


def test_anthropic_request_is_redacted_in_blocks_tool_use_and_results(redacting: Gateway, mock: Mock) -> None:
    marker = uuid.uuid4().hex
    client = anthropic.Anthropic(base_url=redacting.url, api_key=CLIENT_TOKEN, max_retries=0)
    client.messages.create(model="claude/claude-sonnet-4-5", max_tokens=64, system=f"sys {marker}", messages=[
        {"role": "user", "content": [{"type": "text", "text": f"key {OPENAI_KEY}"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "store", "input": {"token": GITHUB}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": f"stored {GITHUB}"},
            {"type": "text", "text": f"cached {OPENAI_KEY}", "cache_control": {"type": "ephemeral"}}]},
    ])
    body = json.loads(_sent(mock, marker))
    messages = body["messages"]
    assert OPENAI_KEY not in json.dumps(messages[0]) and GITHUB not in json.dumps(messages[1:])
    assert messages[1]["content"][0]["input"]["token"] == _labels(json.dumps(messages[1]), "github_token")[0]
    assert messages[2]["content"][1]["text"] == f"cached {OPENAI_KEY}"  # cache_control: left alone


def _echo_system(kind: str) -> str:
    return f"note {OPENAI_KEY} for {kind} and {GITHUB}"


@pytest.mark.parametrize("stream", [False, True])
def test_openai_answers_are_redacted_text_and_tool_arguments(redacting: Gateway, stream: bool) -> None:
    client = redacting.openai()
    for model in ("mock/gpt-4o-mini-echosystem", "mock/gpt-4o-mini-echosystem-tools"):
        messages = [{"role": "system", "content": _echo_system(model)}, {"role": "user", "content": "hi"}]
        if stream:
            text, arguments = "", ""
            for chunk in client.chat.completions.create(model=model, messages=messages, stream=True):
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    for call in choice.delta.tool_calls or ():
                        arguments += (call.function.arguments or "") if call.function else ""
        else:
            message = client.chat.completions.create(model=model, messages=messages).choices[0].message
            text = message.content or ""
            arguments = "".join(c.function.arguments for c in message.tool_calls or ())
        answer = text + arguments
        assert OPENAI_KEY not in answer and GITHUB not in answer
        assert _labels(answer, "openai_key") and _labels(answer, "github_token"), answer
        if arguments:
            assert json.loads(arguments)["note"].startswith("note [REDACTED:openai_key:")


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_answers_are_redacted_text_and_tool_input(redacting: Gateway, stream: bool) -> None:
    client = anthropic.Anthropic(base_url=redacting.url, api_key=CLIENT_TOKEN, max_retries=0)
    for model in ("claude/claude-echosystem", "claude/claude-echosystem-tools", "mock/gpt-echosystem-tools"):
        kwargs = {"model": model, "max_tokens": 256, "system": _echo_system(model),
                  "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            with client.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**kwargs)
        answer = json.dumps([block.model_dump() for block in message.content])
        assert OPENAI_KEY not in answer and GITHUB not in answer
        assert _labels(answer, "openai_key") and _labels(answer, "github_token"), answer


def test_same_secret_same_label_in_request_and_answer(redacting: Gateway, mock: Mock) -> None:
    client = redacting.openai()
    marker = uuid.uuid4().hex
    answer = client.chat.completions.create(model="mock/gpt-4o-mini-echosystem", messages=[
        {"role": "system", "content": f"{OPENAI_KEY} {marker}"}, {"role": "user", "content": f"{OPENAI_KEY}"}],
    ).choices[0].message.content or ""
    request_label = _labels(_sent(mock, marker), "openai_key")
    assert request_label and request_label == _labels(answer, "openai_key")


def test_block_policy_refuses_in_the_clients_shape(redacting: Gateway, mock: Mock) -> None:
    marker = uuid.uuid4().hex
    with pytest.raises(openai.BadRequestError) as refused:
        redacting.openai().chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": f"{marker} {OPENAI_KEY}"}])
    assert refused.value.status_code == 400
    assert refused.value.code == "redaction_blocked"
    assert "openai_key" in str(refused.value) and OPENAI_KEY not in str(refused.value)
    assert not [e for e in mock.requests() if marker in e.get("body", "")]


def test_routes_without_redaction_send_the_request_as_is(redacting: Gateway, mock: Mock) -> None:
    marker = uuid.uuid4().hex
    status, _, _ = redacting.request("POST", "/v2/chat/completions", json.dumps({
        "model": "plain", "messages": [{"role": "user", "content": f"{marker} {EMAIL}"}]}).encode())
    assert status == 200
    assert EMAIL in _sent(mock, marker)


def test_forward_route_redacts_its_json_body(redacting: Gateway, mock: Mock) -> None:
    marker = uuid.uuid4().hex
    redacting.openai().embeddings.create(model="text-embedding-3-small", input=[marker, f"key {OPENAI_KEY}"])
    body = json.loads(_sent(mock, marker))
    assert body["model"] == "text-embedding-3-small"
    assert body["input"][1].startswith("key [REDACTED:openai_key:")


def test_forward_route_redacts_its_json_answers(redacting: Gateway, mock: Mock) -> None:
    # A multipart upload is not JSON: the mock gets the file name as it is, and its answer
    # (the file object) quotes it; so does the answer to a GET, which has no body at all.
    client = redacting.openai()
    uploaded = client.files.create(file=(f"{EMAIL}.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert EMAIL not in uploaded.filename and _labels(uploaded.filename, "email"), uploaded
    fetched = client.files.retrieve(uploaded.id)
    assert fetched.filename == uploaded.filename and fetched.id == uploaded.id
    # ids and the model are names, not text: never redacted; a body with nothing found is as sent
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["plain words"])
    assert embedded.model and len(embedded.data[0].embedding) > 0


def test_counts_in_metrics_statsz_and_access_log_never_values(redacting: Gateway) -> None:
    response = redacting.openai().chat.completions.with_raw_response.create(
        model="mock/gpt-4o-mini-echosystem",
        messages=[{"role": "system", "content": EMAIL}, {"role": "user", "content": f"{EMAIL} {EMAIL}"}])
    line = access_line(redacting, response.headers["x-request-id"])
    assert line["redactions"] == {"request": {"email": 2}, "answer": {"email": 1}}
    text = redacting.metrics()
    assert metric(text, 'gateway_redactions_total{direction="request",kind="email"}') >= 2
    assert metric(text, 'gateway_redactions_total{direction="answer",kind="email"}') >= 1
    status, _, raw = redacting.get("/statsz", {"Authorization": f"Bearer {CLIENT_TOKEN}"})
    stats = json.loads(raw)
    assert status == 200 and stats["redactions"]["request"]["email"] >= 2
    assert EMAIL not in text and EMAIL not in raw.decode()


def test_a_prompt_sent_to_the_providers_token_counter_is_redacted(redacting: Gateway, mock: Mock) -> None:
    marker = uuid.uuid4().hex
    body = {"model": "claude-x", "messages": [{"role": "user", "content": f"{marker} my key is {OPENAI_KEY}"}]}
    status, _, answer = redacting.request("POST", "/v1/messages/count_tokens", json.dumps(body).encode())
    assert status == 200, answer
    sent = _sent(mock, marker)
    assert OPENAI_KEY not in sent and _labels(sent, "openai_key")


def _cut_stream(redacting: Gateway, path: str, model: str, system: str) -> str:
    """A stream whose upstream answers with `system` and is then cut (the mock's
    `fault-cutend`: the whole reply, then a dropped connection): the text the client got.
    Every event must be whole JSON of the client's format, the error event last."""
    body = {"model": model, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if path == "/v1/messages":
        body["system"] = system
    else:
        body["messages"].insert(0, {"role": "system", "content": system})
    status, _, raw = redacting.request("POST", path, json.dumps(body).encode())
    assert status == 200, raw
    events = raw.decode().split("\n\n")
    assert events[-1] == "", raw
    text, parsed = "", []
    for event in events[:-1]:
        data = [line[6:] for line in event.split("\n") if line.startswith("data: ")]
        assert len(data) == 1, event
        parsed.append(json.loads(data[0]))
    for chunk in parsed[:-1]:
        if path == "/v1/messages":
            text += chunk.get("delta", {}).get("text", "")
        else:
            text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
    assert "error" in parsed[-1] and "failed mid-stream" in json.dumps(parsed[-1]), parsed[-1]
    return text


@pytest.mark.parametrize(("path", "model"), [("/v1/chat/completions", "mock/gpt-echosystem-fault-cutend"),
                                             ("/v1/messages", "claude/claude-echosystem-fault-cutend"),
                                             ("/v1/messages", "mock/gpt-echosystem-fault-cutend")])
def test_an_upstream_cut_flushes_held_text_and_masks_a_secret_cut_short(
    redacting: Gateway, path: str, model: str
) -> None:
    # The last word of prose is held back (it could begin an address or a token): a cut
    # sends it before the error event instead of dropping it.
    assert _cut_stream(redacting, path, model, "Goodbye").endswith("You said: Goodbye")
    # A key whose upstream was cut before it was whole matches no pattern: its start is
    # still replaced, by a label that says it was cut short.
    partial = OPENAI_KEY[:20]
    text = _cut_stream(redacting, path, model, partial)
    assert text.endswith("You said: [REDACTED:openai_key:partial]") and partial[:8] not in text, text
    # A whole secret held at the cut gets its usual label.
    text = _cut_stream(redacting, path, model, f"my key {OPENAI_KEY}")
    assert OPENAI_KEY[:8] not in text and _labels(text, "openai_key"), text
