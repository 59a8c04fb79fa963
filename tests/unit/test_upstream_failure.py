"""In process: how failures are classified and answered, and how the walk over targets goes.

Pure functions on plain values; no gateway, no mock provider.
"""

from __future__ import annotations

import asyncio

import pytest

from converters.upstream_errors import UpstreamError
from dsl.table import DEFAULT_RETRY_ON, RetryPolicy
from upstream.attempt import walk
from upstream.failure import Failure, agent_answer, answered_with_error, relay_answer, retried_on, status_kind


def failure(status: int, kind: str = "", message: str = "boom", **extra: object) -> Failure:
    return Failure("p", "p/m", status, kind or status_kind(status), message, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (0, "connect", True),
        (0, "timeout", True),
        (200, "empty", True),
        (400, "invalid_request", False),
        (404, "", False),
        (408, "", True),
        (422, "", False),
        (429, "", True),
        (401, "", True),  # our key refused: another provider may take its own
        (403, "", True),
        (500, "", True),
        (502, "bad_upstream_body", True),
        (529, "", True),
    ],
)
def test_which_failures_walk_on(status: int, kind: str, retryable: bool) -> None:
    assert failure(status, kind).retryable is retryable
    assert retried_on(failure(status, kind), DEFAULT_RETRY_ON) is retryable  # the default policy agrees


def test_a_refused_key_is_a_502_that_does_not_repeat_the_providers_message() -> None:
    refused = answered_with_error("p", "p/m", 401, UpstreamError("key sk-123 is wrong", code="invalid_api_key"))
    for answer in (agent_answer([refused]), relay_answer(refused)):
        assert (answer.status, answer.code) == (502, "http_401")
        assert answer.message == "p rejected the gateway's credentials (HTTP 401)"


def test_a_timeout_is_a_504_and_other_transport_failures_a_502() -> None:
    assert agent_answer([failure(0, "timeout", "Operation timed out")]).status == 504
    assert agent_answer([failure(0, "connect")]).status == 502
    assert relay_answer(failure(0, "timeout")).message == "upstream p failed: timeout"
    assert relay_answer(failure(0, "connect")).status == 502


def test_an_overloaded_provider_is_a_503() -> None:
    assert agent_answer([failure(529)]).status == 503
    assert agent_answer([failure(503)]).status == 503
    assert agent_answer([failure(500)]).status == 502


def test_a_429_keeps_its_retry_after_and_the_providers_own_error() -> None:
    error = UpstreamError("slow down", type="requests", code="rate_limit_exceeded")
    answer = agent_answer([answered_with_error("p", "p/m", 429, error, "7")])
    assert (answer.status, answer.message, answer.code, answer.headers) == (
        429, "slow down", "rate_limit_exceeded", {"Retry-After": "7"}
    )
    assert answer.type == "requests"


def test_the_message_names_how_many_targets_failed() -> None:
    answer = agent_answer([failure(0, "connect", "refused"), failure(500, message="oops")])
    assert answer.message == "all 2 targets failed; last p/m: oops"
    assert agent_answer([failure(422, message="bad")]).message == "p/m: bad"


def test_backoff_is_fully_jittered_and_bounded() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0)
    for retry in range(1, 12):
        assert 0.0 <= policy.pause(retry) <= min(0.1 * 2 ** (retry - 1), 1.0)


def run_walk(results: list[Failure | None], replayable: bool = True, gone_after: int = 99) -> tuple:
    """Walk over as many candidates as `results`; each try answers with its result."""
    tried: list[tuple[int, bool]] = []

    async def try_one(index: int, more: bool) -> Failure | None:
        tried.append((index, more))
        return results[index]

    async def main() -> list[Failure] | None:
        return await walk(range(len(results)), try_one, lambda: len(tried) >= gone_after,
                          replayable=replayable, pause=lambda n: 0.0)

    return asyncio.run(main()), tried


def test_the_walk_stops_at_the_first_answer() -> None:
    failures, tried = run_walk([failure(500), None, failure(500)])
    assert failures is None and tried == [(0, True), (1, True)]


def test_the_walk_stops_at_a_final_failure() -> None:
    final = failure(422)
    failures, tried = run_walk([failure(0, "connect"), final, None])
    assert failures is not None and failures[-1] is final and len(failures) == 2
    assert tried == [(0, True), (1, True)]


def test_the_last_target_is_told_that_none_follows() -> None:
    failures, tried = run_walk([failure(503), failure(503)])
    assert failures is not None and len(failures) == 2
    assert tried == [(0, True), (1, False)]


def test_a_body_that_cannot_be_replayed_gets_one_target() -> None:
    failures, tried = run_walk([failure(503), None], replayable=False)
    assert failures is not None and len(failures) == 1 and tried == [(0, False)]


def test_a_client_that_left_ends_the_walk_without_an_answer() -> None:
    failures, tried = run_walk([failure(503), None], gone_after=1)
    assert failures is None and tried == [(0, True)]
