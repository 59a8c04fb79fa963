"""In process: the walk over targets under a retry policy (routes.yaml `retry:`).

Pure: scripted outcomes, a pause function that records instead of sleeping, and a clock
the test moves, so that the deadline is exercised without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dsl.table import BreakerSettings, RetryPolicy
from upstream.attempt import walk
from upstream.breaker import BreakerBoard
from upstream.failure import Failure, status_kind


def failure(status: int, kind: str = "") -> Failure:
    return Failure("p", "p/m", status, kind or status_kind(status), "boom")


class Script:
    """Outcomes per candidate, taken in order; records every try, pause and moment."""

    def __init__(self, outcomes: dict[str, list[Failure | None]], took: float = 0.0) -> None:
        self.outcomes = {name: list(results) for name, results in outcomes.items()}
        self.tried: list[tuple[str, bool]] = []
        self.pauses: list[int] = []
        self.now = 0.0
        self.took = took  # how far each try moves the clock

    async def try_one(self, name: str, more: bool) -> Failure | None:
        self.tried.append((name, more))
        self.now += self.took
        return self.outcomes[name].pop(0)

    def pause(self, retry: int) -> float:
        self.pauses.append(retry)
        return 0.0

    def walk(self, policy: RetryPolicy, *, replayable: bool = True, board: BreakerBoard | None = None,
             candidates: Sequence[str] | None = None) -> list[Failure] | None:
        names = list(self.outcomes) if candidates is None else list(candidates)
        return asyncio.run(walk(
            names, self.try_one, lambda: False, replayable=replayable, policy=policy, pause=self.pause,
            clock=lambda: self.now, breakers=board, key=None if board is None else (lambda name: ("p", name)),
        ))


def test_each_target_gets_its_attempts_then_the_next_one() -> None:
    script = Script({"a": [failure(503)] * 3, "b": [failure(503), None]})
    assert script.walk(RetryPolicy(attempts=3)) is None
    assert [name for name, _ in script.tried] == ["a", "a", "a", "b", "b"]
    assert script.pauses == [1, 2, 3, 4]  # a pause before every retry, growing


def test_one_attempt_per_target_is_todays_walk() -> None:
    script = Script({"a": [failure(500)], "b": [None]})
    assert script.walk(RetryPolicy()) is None
    assert script.tried == [("a", True), ("b", False)]


def test_the_last_try_is_told_no_other_follows() -> None:
    script = Script({"a": [failure(503), failure(503)]})
    failures = script.walk(RetryPolicy(attempts=2))
    assert script.tried == [("a", True), ("a", False)]
    assert failures is not None and [f.status for f in failures] == [503, 503]


def test_only_the_failures_named_in_when_are_retried() -> None:
    policy = RetryPolicy(attempts=3, when=frozenset({"429", "timeout"}))
    script = Script({"a": [failure(429), failure(0, "timeout"), failure(503)], "b": [None]})
    failures = script.walk(policy)
    assert [name for name, _ in script.tried] == ["a", "a", "a"]  # the 503 ends the walk
    assert failures is not None and failures[-1].status == 503
    connect = Script({"a": [failure(0, "connect")], "b": [None]})
    assert connect.walk(RetryPolicy(when=frozenset({"transport"}))) is None
    assert [name for name, _ in connect.tried] == ["a", "b"]
    classes = Script({"a": [failure(404)], "b": [None]})
    assert classes.walk(RetryPolicy(when=frozenset({"4xx"}))) is None


def test_a_consumed_body_is_never_replayed() -> None:
    script = Script({"a": [failure(503)] * 3, "b": [None]})
    failures = script.walk(RetryPolicy(attempts=3), replayable=False)
    assert script.tried == [("a", False)]
    assert failures is not None and len(failures) == 1


def test_no_try_starts_after_the_deadline_and_the_walk_ends_as_a_timeout() -> None:
    script = Script({"a": [failure(503)] * 5, "b": [None]}, took=0.4)
    failures = script.walk(RetryPolicy(attempts=5, deadline=1.0))
    assert [name for name, _ in script.tried] == ["a", "a", "a"]  # at 0, 0.4, 0.8; at 1.2 it is over
    assert failures is not None and (failures[-1].kind, failures[-1].status) == ("timeout", 0)


def test_a_try_still_running_at_the_deadline_is_cancelled() -> None:
    cancelled: list[bool] = []

    async def hang(name: str, more: bool) -> Failure | None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return None

    board = BreakerBoard(BreakerSettings(failures=1))
    failures = asyncio.run(walk(["a"], hang, lambda: False, policy=RetryPolicy(deadline=0.01),
                                breakers=board, key=lambda name: ("p", name)))
    assert cancelled == [True]
    assert failures is not None and failures[-1].kind == "timeout"
    assert not board.usable(("p", "a"))  # the breaker saw the cut try as a timeout


def test_an_answer_already_reaching_the_client_outlives_the_deadline() -> None:
    async def slow_answer(name: str, more: bool) -> Failure | None:
        await asyncio.sleep(0.03)
        return None

    assert asyncio.run(walk(["a"], slow_answer, lambda: False, policy=RetryPolicy(deadline=0.01),
                            answering=lambda: True)) is None


def test_a_target_whose_breaker_opens_is_not_retried() -> None:
    board = BreakerBoard(BreakerSettings(failures=2))
    script = Script({"a": [failure(503)] * 5, "b": [None]})
    assert script.walk(RetryPolicy(attempts=5), board=board) is None
    assert [name for name, _ in script.tried] == ["a", "a", "b"]  # open after two: skipped


def test_full_jitter_stays_under_its_ceiling() -> None:
    policy = RetryPolicy(base=0.002, cap=0.005)
    pauses = [policy.pause(n) for n in range(1, 8) for _ in range(20)]
    assert all(0.0 <= p <= 0.005 for p in pauses)
    assert all(0.0 <= policy.pause(1) <= 0.002 for _ in range(20))


def test_a_candidate_refused_by_admit_is_skipped_without_a_try_or_a_verdict() -> None:
    board = BreakerBoard(BreakerSettings(failures=1))
    script = Script({"a": [None], "b": [None]})

    async def admit(name: str) -> Failure | None:
        return failure(429) if name == "a" else None

    assert asyncio.run(walk(["a", "b"], script.try_one, lambda: False, pause=script.pause, breakers=board,
                            key=lambda name: ("p", name), admit=admit)) is None
    assert [name for name, _ in script.tried] == ["b"]
    assert board.usable(("p", "a"))  # a refusal of our own is not the provider failing


def test_when_admit_refuses_every_candidate_its_refusals_are_the_failures() -> None:
    script = Script({"a": [None], "b": [None]})

    async def admit(name: str) -> Failure | None:
        return failure(429)

    failures = asyncio.run(walk(["a", "b"], script.try_one, lambda: False, pause=script.pause, admit=admit))
    assert failures is not None and len(failures) == 2 and script.tried == []
