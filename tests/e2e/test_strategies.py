"""Agent strategies end to end: a real gateway in front of the mock, the official OpenAI SDK as client.

The mock names the model that answered in its reply ("Hello from mock gpt-a! ..."), so each
test sees which target served each request.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from tests.e2e.conftest import STANDARD_SECRETS
from tests.support import CLIENT_TOKEN, PROVIDER_KEY, Gateway, Mock, write_config

ROUTES = f"""
version: 1
server:
  listen: 127.0.0.1:${{GATEWAY_PORT}}
secrets: secrets.yaml
providers:
  mock: {{url: "${{MOCK_URL}}/v1", api_key: {PROVIDER_KEY}}}
agents:
  rr: {{strategy: round-robin, models: [mock/gpt-a, mock/gpt-b, mock/gpt-c]}}
  weighted: {{strategy: weighted, models: [{{target: mock/gpt-a, weight: 3}}, mock/gpt-b]}}
  sticky: {{strategy: sticky, models: [mock/gpt-a-cache, mock/gpt-b-cache, mock/gpt-c-cache]}}
  rrcache: {{strategy: round-robin, models: [mock/gpt-d-cache, mock/gpt-e-cache, mock/gpt-f-cache]}}
  fastest: {{strategy: least-latency, models: [mock/gpt-delay-200, mock/gpt-quick]}}
  busy: {{strategy: least-latency, models: [mock/gpt-delay-50-busy-a, mock/gpt-delay-50-busy-b]}}
routes:
  - {{match: POST /v1/chat/completions, handler: chat}}
  - {{match: POST /v1/messages, handler: chat, ingress: anthropic}}
  - {{match: GET /healthz, handler: health}}
  - {{match: GET /metrics, handler: metrics}}
"""

_ANSWERED_BY = re.compile(r"Hello from mock (\S+)!")


@pytest.fixture(scope="module")
def strategies_gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = write_config(tmp_path_factory.mktemp("strategies"), ROUTES, STANDARD_SECRETS)
    process = Gateway(config, env={"MOCK_URL": mock.url})
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


def ask(gateway: Gateway, agent: str, messages: list[dict], **kw: object) -> str:
    """Which mock model answered."""
    answer = gateway.openai().chat.completions.create(model=agent, messages=messages, **kw)  # type: ignore[call-overload]
    found = _ANSWERED_BY.match(answer.choices[0].message.content or "")
    assert found, answer
    return found.group(1)


def hello(n: int) -> list[dict]:
    return [{"role": "user", "content": f"hello {n}"}]


def test_round_robin_spreads_evenly(strategies_gateway: Gateway) -> None:
    served = Counter(ask(strategies_gateway, "rr", hello(i)) for i in range(60))
    assert served == {"gpt-a": 20, "gpt-b": 20, "gpt-c": 20}


def test_weighted_follows_its_weights(strategies_gateway: Gateway) -> None:
    served = Counter(ask(strategies_gateway, "weighted", hello(i)) for i in range(40))
    assert served == {"gpt-a": 30, "gpt-b": 10}


def converse(gateway: Gateway, agent: str, topic: int, turns: int) -> list[str]:
    """One conversation of `turns` turns, each sending the whole history back; who answered each."""
    messages: list[dict] = [{"role": "system", "content": "You are brief."},
                            {"role": "user", "content": f"Tell me about topic {topic}, please"}]
    served = []
    for turn in range(turns):
        served.append(ask(gateway, agent, messages))
        messages += [{"role": "assistant", "content": f"Answer {turn}"},
                     {"role": "user", "content": f"And then what about part {turn}?"}]
    return served


def cached_share(gateway: Gateway, agent: str) -> float:
    """Of the agent's prompt tokens, the share its targets reported read from their prompt cache."""
    tokens: Counter[str] = Counter()
    for line in gateway.metrics().splitlines():
        if line.startswith("gateway_prompt_cache_tokens_total{") and f'agent="{agent}"' in line:
            kind = re.search(r'kind="([a-z_]+)"', line)
            assert kind
            tokens[kind.group(1)] += float(line.rsplit(" ", 1)[1])
    return tokens["cached"] / (tokens["cached"] + tokens["uncached"] + tokens["cache_write"])


def test_sticky_keeps_each_conversation_on_one_target(strategies_gateway: Gateway) -> None:
    conversations = [converse(strategies_gateway, "sticky", topic, 4) for topic in range(12)]
    assert all(len(set(served)) == 1 for served in conversations), conversations
    assert len({served[0] for served in conversations}) >= 2, conversations  # and they spread
    # The same conversations through round-robin miss the cache the previous turn warmed.
    for topic in range(12):
        converse(strategies_gateway, "rrcache", topic, 4)
    sticky, spread = cached_share(strategies_gateway, "sticky"), cached_share(strategies_gateway, "rrcache")
    assert sticky > 0.5 and sticky > 2 * spread, (sticky, spread)


def test_sticky_follows_the_session_header(strategies_gateway: Gateway) -> None:
    """With x-session-id, unrelated prompts of one session share a target; sessions spread."""
    for session in ("s-1", "s-2", "s-3"):
        served = {ask(strategies_gateway, "sticky", hello(i), extra_headers={"x-session-id": session})
                  for i in range(5)}
        assert len(served) == 1, (session, served)
    sessions = {ask(strategies_gateway, "sticky", hello(0), extra_headers={"x-session-id": f"s-{i}"})
                for i in range(20)}
    assert len(sessions) >= 2


def test_least_latency_moves_to_the_faster_target(strategies_gateway: Gateway) -> None:
    served = [ask(strategies_gateway, "fastest", hello(i)) for i in range(30)]
    assert served[0] == "gpt-delay-200" and served[1] == "gpt-quick", served  # each untried target once
    assert Counter(served[10:])["gpt-quick"] >= 16, served


def test_sticky_keeps_an_anthropic_conversation_on_one_target(strategies_gateway: Gateway) -> None:
    """An Anthropic client's system prompt is a top-level field; its turns stick all the same."""
    client = anthropic.Anthropic(base_url=strategies_gateway.url, api_key=CLIENT_TOKEN, max_retries=0)
    for topic in range(4):
        messages: list[dict] = [{"role": "user", "content": f"Anthropic topic {topic}"}]
        served = set()
        for turn in range(3):
            answer = client.messages.create(model="sticky", max_tokens=64, system="Be brief.",
                                            messages=messages)  # type: ignore[arg-type]
            text = answer.content[0].text  # type: ignore[union-attr]
            found = _ANSWERED_BY.match(text)
            assert found, text
            served.add(found.group(1))
            messages += [{"role": "assistant", "content": text}, {"role": "user", "content": f"turn {turn}"}]
        assert len(served) == 1, served


def test_least_latency_spreads_requests_in_flight_over_equally_fast_targets(
    strategies_gateway: Gateway, mock: Mock
) -> None:
    """A target busy with requests in flight ranks worse: held requests do not pile on one target."""
    models = ("gpt-delay-50-busy-a", "gpt-delay-50-busy-b")
    assert [ask(strategies_gateway, "busy", hello(i)) for i in range(2)] == list(models)  # each untried once
    try:
        for model in models:
            mock.script_fault(model, first_byte_delay_ms=1000, times=4)  # held while the others arrive
        with ThreadPoolExecutor(4) as pool:
            served = list(pool.map(lambda i: ask(strategies_gateway, "busy", hello(i)), range(4)))
    finally:
        for model in models:
            mock.script_fault(model, recover=True)
    assert set(served) == set(models), served
