"""Agent strategies order targets (upstream/strategies.py): spread, weights, stickiness, latency."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from types import MappingProxyType

import pytest

from dsl.table import Agent, Provider, Target
from upstream.strategies import Strategies, conversation_key, rendezvous_order

PROVIDER = Provider("p", "openai", "http://127.0.0.1:1/v1", MappingProxyType({}), 1.0, 1.0, ())


def agent(strategy: str, *weights: int) -> Agent:
    targets = tuple(Target(PROVIDER, f"m{i}") for i in range(len(weights)))
    return Agent("a", strategy, targets, weights)


@contextlib.contextmanager
def trying(strategies: Strategies, target: Target) -> Iterator[None]:
    """One try of `target` in flight while the block runs, as a handler counts one."""
    strategies.start_try(target)
    try:
        yield
    finally:
        strategies.end_try(target)


def firsts(strategies: Strategies, chosen: Agent, requests: int) -> Counter[str]:
    return Counter(strategies.order(chosen, {})[0].model for _ in range(requests))


def test_fallback_keeps_the_declared_order() -> None:
    chosen = agent("fallback", 1, 1, 1)
    assert [t.model for t in Strategies().order(chosen, {})] == ["m0", "m1", "m2"]


def test_round_robin_spreads_evenly_and_falls_back_down_the_rotation() -> None:
    strategies, chosen = Strategies(), agent("round-robin", 1, 1, 1)
    assert [t.model for t in strategies.order(chosen, {})] == ["m0", "m1", "m2"]
    assert [t.model for t in strategies.order(chosen, {})] == ["m1", "m2", "m0"]
    counts = firsts(strategies, chosen, 300)
    assert all(95 <= n <= 105 for n in counts.values()) and len(counts) == 3, counts


def test_weighted_follows_the_weights_smoothly() -> None:
    strategies, chosen = Strategies(), agent("weighted", 3, 1, 2)
    assert firsts(strategies, chosen, 600) == {"m0": 300, "m1": 100, "m2": 200}
    run = [strategies.order(chosen, {})[0].model for _ in range(6)]
    assert run.count("m0") == 3 and "m0m0m0" not in "".join(run)  # interleaved, not a burst
    # Every order still holds every target once, to fall back down.
    assert sorted(t.model for t in strategies.order(chosen, {})) == ["m0", "m1", "m2"]


def test_rendezvous_same_key_same_target_and_keys_spread() -> None:
    targets = [Target(PROVIDER, f"m{i}") for i in range(3)]
    keys = [f"conversation-{i}".encode() for i in range(3000)]
    chosen = {key: rendezvous_order(key, targets, (1, 1, 1))[0] for key in keys}
    assert all(rendezvous_order(key, targets, (1, 1, 1))[0] == chosen[key] for key in keys[:100])
    counts = Counter(t.model for t in chosen.values())
    assert all(900 <= n <= 1100 for n in counts.values()), counts


def test_rendezvous_weights_share_the_keys() -> None:
    targets = [Target(PROVIDER, "m0"), Target(PROVIDER, "m1")]
    counts = Counter(rendezvous_order(f"k{i}".encode(), targets, (3, 1))[0].model for i in range(4000))
    assert 2850 <= counts["m0"] <= 3150, counts


def test_removing_a_target_moves_only_its_own_keys() -> None:
    targets = [Target(PROVIDER, f"m{i}") for i in range(4)]
    keys = [f"conversation-{i}".encode() for i in range(2000)]
    before = {key: rendezvous_order(key, targets, (1, 1, 1, 1))[0] for key in keys}
    remaining = [t for t in targets if t.model != "m2"]
    after = {key: rendezvous_order(key, remaining, (1, 1, 1))[0] for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved and all(before[key].model == "m2" for key in moved)
    # ... and its keys go to the target that was second for them: the fallback order agrees.
    assert all(after[key] == rendezvous_order(key, targets, (1, 1, 1, 1))[1] for key in moved)


def test_conversation_key_follows_the_session_else_the_conversation_start() -> None:
    turn1 = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}
    turn2 = {"messages": [*turn1["messages"], {"role": "assistant", "content": "hello"},
                          {"role": "user", "content": "more"}]}
    other = {"messages": [{"role": "system", "content": "be long"}, {"role": "user", "content": "hi"}]}
    assert conversation_key("a", turn1, None) == conversation_key("a", turn2, None)
    assert conversation_key("a", turn1, None) != conversation_key("a", other, None)
    assert conversation_key("a", turn1, None) != conversation_key("b", turn1, None)
    anthropic = {"system": "be brief", "messages": [{"role": "user", "content": "hi"}]}
    assert conversation_key("a", anthropic, None) == conversation_key("a", turn1, None)
    assert conversation_key("a", turn1, "s1") == conversation_key("a", other, "s1")
    assert conversation_key("a", {**turn1, "user": "u1"}, None) == conversation_key("a", other, "u1")
    assert conversation_key("a", {**turn1, "metadata": {"user_id": "u1"}}, None) == conversation_key(
        "a", other, "u1"
    )


def test_sticky_orders_a_conversation_alike_in_every_process() -> None:
    chosen = agent("sticky", 1, 1, 1)
    turn = {"messages": [{"role": "user", "content": "hi"}]}
    orders = {tuple(t.model for t in Strategies().order(chosen, turn)) for _ in range(20)}
    assert len(orders) == 1


def test_least_latency_tries_the_untried_then_prefers_the_faster() -> None:
    strategies, chosen = Strategies(), agent("least-latency", 1, 1, 1)
    m0, m1, m2 = chosen.targets
    strategies.observe(m0, 0.5)
    assert strategies.order(chosen, {})[0] in (m1, m2)  # untried first
    strategies.observe(m1, 0.2)
    strategies.observe(m2, None)  # a failure counts as very slow
    counts = firsts(strategies, chosen, 1000)
    assert counts == {"m1": 950, "m0": 25, "m2": 25}, counts  # 1 in 20 explores, each other in turn
    for _ in range(10):
        strategies.observe(m0, 0.05)
    assert firsts(strategies, chosen, 100).most_common(1)[0][0] == "m0"


def test_least_latency_ranks_a_busy_target_by_its_requests_in_flight() -> None:
    strategies, chosen = Strategies(), agent("least-latency", 1, 1)
    fast, slower = chosen.targets
    strategies.observe(fast, 0.10)
    strategies.observe(slower, 0.15)
    assert strategies.order(chosen, {})[0] == fast  # idle: the faster
    with trying(strategies, fast):  # 0.10 × 2 > 0.15 × 1
        assert strategies.order(chosen, {}) == [slower, fast]
        with trying(strategies, slower), trying(strategies, slower):  # 0.10 × 2 < 0.15 × 3
            assert strategies.order(chosen, {})[0] == fast
    assert strategies.order(chosen, {})[0] == fast
    assert strategies.in_flight == {}


def test_a_first_burst_spreads_over_the_untried_targets() -> None:
    strategies, chosen = Strategies(), agent("least-latency", 1, 1, 1)
    with contextlib.ExitStack() as tries:
        firsts_of_burst = []
        for _ in range(3):
            first = strategies.order(chosen, {})[0]
            tries.enter_context(trying(strategies, first))
            firsts_of_burst.append(first.model)
    assert firsts_of_burst == ["m0", "m1", "m2"]


def test_a_try_leaves_the_in_flight_count_however_it_ends() -> None:
    strategies, chosen = Strategies(), agent("least-latency", 1)
    target = chosen.targets[0]
    with pytest.raises(RuntimeError), trying(strategies, target):
        assert strategies.in_flight == {"p/m0": 1}
        raise RuntimeError("the client left")
    assert strategies.in_flight == {}
