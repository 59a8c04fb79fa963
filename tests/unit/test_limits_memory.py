"""The sliding-window log in memory (with a clock the test moves), and the Limiter over it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import pytest

from converters.usage import Usage
from dsl.compiler import compile_file
from handlers.registry import HANDLERS
from limits.backend import Charge, Check, Correction
from limits.limiter import Limiter
from limits.memory import MemoryBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run(coroutine):
    return asyncio.run(coroutine)


def test_exact_under_concurrency() -> None:
    backend = MemoryBackend()
    check = [Check("window", "k", 100, 60.0, 1)]

    async def burst() -> int:
        admissions = await asyncio.gather(*(backend.admit(check, f"e{i}") for i in range(400)))
        return sum(a.allowed for a in admissions)

    assert run(burst()) == 100


@pytest.mark.parametrize("kind", ["count", "window"])
def test_an_entry_leaves_the_window_exactly_at_its_end(kind: str) -> None:
    clock = Clock()
    backend = MemoryBackend(clock)
    check = [Check(kind, "k", 2, 60.0, 1)]

    async def scenario() -> None:
        first = await backend.admit(check, "a")
        clock.now += 10
        assert (await backend.admit(check, "b")).allowed
        clock.now += 49.999
        refused = await backend.admit(check, "c")
        assert not refused.allowed and refused.refused == 0
        assert abs(refused.retry_after - 0.001) < 1e-6  # when the first entry leaves
        clock.now = first.at + 60.0  # the first entry made at t counts while now < t + 60
        admitted = await backend.admit(check, "d")
        assert admitted.allowed and admitted.outcomes[0].used == 2

    run(scenario())


def test_a_refusal_counts_nothing_anywhere() -> None:
    backend = MemoryBackend(Clock())
    checks = [Check("window", "key", 10, 60.0, 1), Check("window", "agent", 1, 60.0, 1)]

    async def scenario() -> None:
        assert (await backend.admit(checks, "a")).allowed
        refused = await backend.admit(checks, "b")
        assert not refused.allowed and refused.refused == 1
        assert refused.outcomes[0].used == 1  # the key's count did not move
        assert (await backend.admit(checks[:1], "c")).outcomes[0].used == 2

    run(scenario())


def test_tokens_corrected_at_the_admission_time_leave_with_their_entry() -> None:
    clock = Clock()
    backend = MemoryBackend(clock)
    tpm = [Check("window", "t", 1000, 60.0, 600)]

    async def scenario() -> None:
        first = await backend.admit(tpm, "a")
        assert not (await backend.admit(tpm, "b")).allowed  # 600 + 600 > 1000
        clock.now += 5
        await backend.settle([Correction("t", 60.0, first.at, -500)], [], [], "a.s")  # used 100, not 600
        second = await backend.admit(tpm, "c")
        assert second.allowed and second.outcomes[0].used == 700
        clock.now = first.at + 60.0  # the entry and its correction leave together
        third = await backend.admit([Check("window", "t", 1000, 60.0, 1)], "d")
        assert third.outcomes[0].used == 601

    run(scenario())


def test_a_request_larger_than_the_limit_passes_an_empty_window() -> None:
    backend = MemoryBackend(Clock())
    big = [Check("window", "t", 1000, 60.0, 5000)]

    async def scenario() -> None:
        assert (await backend.admit(big, "a")).allowed
        assert not (await backend.admit(big, "b")).allowed

    run(scenario())


def test_concurrent_leases_released_or_expired() -> None:
    clock = Clock()
    backend = MemoryBackend(clock)
    slot = [Check("concurrent", "c", 2, 30.0)]

    async def scenario() -> None:
        assert (await backend.admit(slot, "a")).allowed
        assert (await backend.admit(slot, "b")).allowed
        assert not (await backend.admit(slot, "c")).allowed
        await backend.settle([], [("c", "a")], [], "a.s")
        assert (await backend.admit(slot, "d")).allowed
        clock.now += 30.0  # a worker that died never releases: its leases expire
        assert (await backend.admit(slot, "e")).outcomes[0].used == 1

    run(scenario())


def test_budget_checks_read_the_spend_and_forget_it_after_its_period() -> None:
    clock = Clock()
    backend = MemoryBackend(clock)
    budget = [Check("budget", "s", 100)]

    async def scenario() -> None:
        await backend.settle([], [], [Charge("s", 60, clock.now + 10)], "x")
        assert (await backend.admit(budget, "a")).allowed
        await backend.settle([], [], [Charge("s", 40, clock.now + 10)], "y")
        assert not (await backend.admit(budget, "b")).allowed
        assert await backend.spent(["s", "none"]) == [100, 0]
        clock.now += 10
        assert (await backend.admit(budget, "c")).allowed

    run(scenario())


ROUTES = """\
version: 1
secrets: secrets.yaml
providers:
  mock: {url: "http://127.0.0.1:1/v1"}
  other: {url: "http://127.0.0.1:2/v1"}
models:
  m1: {price: {input: 1000.0, output: 2000.0, cached_input: 500.0}}
agents:
  a: {models: [mock/m1, other/m1]}
limits:
  keys: {rpm: 3, tpm: 10000}
  agents: {a: {concurrent: 2}}
  providers: {mock: {rpm: 1}}
routes:
  - {match: POST /v1/chat/completions, handler: chat}
"""
SECRETS = """\
client_token: a-client-token-of-some-length
api_keys:
  team:
    token: a-team-token-of-some-length
    budget: {usd: 0.01, per: day}
"""


def limiter(tmp_path: Path) -> Limiter:
    (tmp_path / "secrets.yaml").write_text(SECRETS)
    (tmp_path / "routes.yaml").write_text(ROUTES)
    limiter = Limiter()
    limiter.configure(compile_file(str(tmp_path / "routes.yaml"), {}, handlers=HANDLERS.rules))
    return limiter


def test_request_then_targets_then_finish(tmp_path: Path) -> None:
    limits = limiter(tmp_path)

    async def scenario() -> None:
        decision = await limits.admit_request("admin", "a", 100)
        assert decision.allowed
        assert decision.headers["x-ratelimit-remaining-requests"] == "2"
        assert decision.headers["x-ratelimit-limit-tokens"] == "10000"
        assert decision.headers["x-ratelimit-remaining-tokens"] == "9900"
        assert decision.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert (await limits.admit_target(decision.ticket, "mock", "m1")).allowed
        second = await limits.admit_request("admin", "a", 100)
        over = await limits.admit_target(second.ticket, "mock", "m1")  # the provider's rpm is 1
        assert not over.allowed and over.refused.scope == "provider" and over.refused.kind == "rpm"
        assert (await limits.admit_target(second.ticket, "other", "m1")).allowed  # walks on
        third = await limits.admit_request("admin", "a", 100)  # the agent's concurrent limit is 2
        assert not third.allowed and third.refused.scope == "agent" and third.refused.kind == "concurrent"
        assert third.response_headers()["Retry-After"] == "1"
        await limits.finish(decision.ticket, Usage(input=10, output=10, reported=True))
        fourth = await limits.admit_request("admin", "a", 100)
        assert fourth.allowed, fourth.refused  # a slot was released
        assert fourth.headers["x-ratelimit-remaining-tokens"] == str(10000 - 20 - 100 - 100)
        assert fourth.headers["x-ratelimit-remaining-requests"] == "0"
        fifth = await limits.admit_request("admin", None, 1)
        assert not fifth.allowed and fifth.refused.scope == "key" and fifth.refused.kind == "rpm"
        assert 59 <= fifth.retry_after <= 60 and fifth.response_headers()["Retry-After"] == "60"
        assert fifth.headers["x-ratelimit-remaining-requests"] == "0"
        answer = fifth.answer()
        assert (answer.status, answer.code, answer.kind) == (429, "rate_limit_exceeded", "requests")
        # The window began moments ago: under half a millisecond, and the wait reads as a whole minute.
        assert re.fullmatch(r"Rate limit reached for key 'admin' on requests per min \(RPM\): "
                            r"Limit 3, Used 3, Requested 1\. Please try again in (59\.9\d*s|1m0s)\.", answer.message)

    run(scenario())


def test_budget_exhausted_at_registry_prices_then_refused(tmp_path: Path) -> None:
    limits = limiter(tmp_path)

    async def scenario() -> None:
        decision = await limits.admit_request("team", None, 1)
        await limits.admit_target(decision.ticket, "other", "m1")
        # 4 uncached prompt tokens at $1000/M, 2 cached at $500/M, 1 output at $2000/M = $0.007
        await limits.finish(decision.ticket, Usage(input=6, cached=2, output=1, reported=True))
        assert (await limits.spend())["team"] == {"usd": 0.007, "budget": 0.01, "per": "day"}
        again = await limits.admit_request("team", None, 1)
        assert again.allowed
        await limits.admit_target(again.ticket, "other", "m1")
        await limits.finish(again.ticket, Usage(input=3, output=0, reported=True))  # $0.003: at the cap
        over = await limits.admit_request("team", None, 1)
        assert not over.allowed and over.refused.kind == "budget"
        assert 0 < over.retry_after <= 86400
        answer = over.answer()
        assert (answer.status, answer.code, answer.kind) == (429, "insufficient_quota", "insufficient_quota")
        assert "budget of key 'team' ($0.01) is spent" in answer.message

    run(scenario())


def test_unreachable_state_follows_on_state_error(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text(SECRETS)
    (tmp_path / "routes.yaml").write_text(ROUTES.replace("limits:", "state: {url: memory, on_state_error: deny}\nlimits:"))
    table = compile_file(str(tmp_path / "routes.yaml"), {}, handlers=HANDLERS.rules)
    limits = Limiter(state_socket=str(tmp_path / "no-state-process.sock"))
    limits.configure(table)

    async def scenario() -> None:
        denied = await limits.admit_request("team", "a", 1)
        assert not denied.allowed and denied.refused.kind == "state"
        assert (denied.answer().status, denied.answer().code) == (503, "state_unavailable")
        allow = dataclasses.replace(table.state, on_state_error="allow")
        limits.configure(dataclasses.replace(table, state=allow))
        allowed = await limits.admit_request("team", "a", 1)
        assert allowed.allowed and not allowed.headers

    run(scenario())


def test_no_limits_no_round_trip(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("client_token: a-client-token-of-some-length\n")
    (tmp_path / "routes.yaml").write_text(ROUTES.split("limits:")[0] + "routes:\n  - {match: POST /v1/chat/completions, handler: chat}\n")
    limits = Limiter(state_socket=str(tmp_path / "none.sock"))  # would fail if asked
    limits.configure(compile_file(str(tmp_path / "routes.yaml"), {}, handlers=HANDLERS.rules))

    async def scenario() -> None:
        decision = await limits.admit_request("admin", "a", 10)
        assert decision.allowed and (await limits.admit_target(decision.ticket, "mock", "m1")).allowed
        await limits.finish(decision.ticket, Usage(input=1, output=1, reported=True))
        assert limits.health.down_since is None

    run(scenario())


def test_a_reload_keeps_the_counts_unless_the_state_changes(tmp_path: Path) -> None:
    limits = limiter(tmp_path)
    table = compile_file(str(tmp_path / "routes.yaml"), {}, handlers=HANDLERS.rules)

    async def scenario() -> None:
        backend = limits.backend
        await limits.admit_request("admin", None, 1)
        limits.configure(table)
        assert limits.backend is backend
        assert (await limits.admit_request("admin", None, 1)).headers["x-ratelimit-remaining-requests"] == "1"
        limits.configure(dataclasses.replace(table, state=dataclasses.replace(table.state, timeout=0.2)))
        assert limits.backend is not backend
        assert (await limits.admit_request("admin", None, 1)).headers["x-ratelimit-remaining-requests"] == "2"

    run(scenario())


def test_tokens_given_back_when_nothing_answered_kept_when_usage_is_unknown(tmp_path: Path) -> None:
    limits = limiter(tmp_path)

    async def remaining_tokens() -> int:
        decision = await limits.admit_request("admin", None, 0)
        await limits.finish(decision.ticket, None)
        return int(decision.headers["x-ratelimit-remaining-tokens"])

    async def scenario() -> None:
        failed = await limits.admit_request("admin", "a", 500)
        await limits.admit_target(failed.ticket, "mock", "m1")
        await limits.finish(failed.ticket, None)
        assert await remaining_tokens() == 10000
        unknown = await limits.admit_request("admin", None, 500)
        await limits.finish(unknown.ticket, Usage())  # answered, usage not reported
        assert await remaining_tokens() == 9500

    run(scenario())


@pytest.mark.parametrize("rates", ["{concurrent: 1, tpm: 1000}", "{tpm: 1000}"])
def test_a_retry_of_the_same_target_gets_what_its_first_try_held(tmp_path: Path, rates: str) -> None:
    (tmp_path / "secrets.yaml").write_text(SECRETS)
    (tmp_path / "routes.yaml").write_text(ROUTES.replace("  providers: {mock: {rpm: 1}}", f"  targets: {{mock/m1: {rates}}}"))
    limits = Limiter()
    limits.configure(compile_file(str(tmp_path / "routes.yaml"), {}, handlers=HANDLERS.rules))

    async def scenario() -> None:
        decision = await limits.admit_request("admin", None, 600)
        assert (await limits.admit_target(decision.ticket, "mock", "m1")).allowed
        retry = await limits.admit_target(decision.ticket, "mock", "m1")  # the first try failed
        assert retry.allowed  # its slot and its 600 tokens were given back
        other = await limits.admit_request("admin", None, 600)
        assert not (await limits.admit_target(other.ticket, "mock", "m1")).allowed  # the retry holds them
        await limits.finish(decision.ticket, Usage(input=5, output=5, reported=True))
        assert (await limits.admit_target(other.ticket, "mock", "m1")).allowed

    run(scenario())
