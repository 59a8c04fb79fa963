"""Hedged walks (upstream/attempt.py `walk` with `hedge_after`) and their sinks (upstream/hedge.py),
in process with tries of our own: which try starts when, and which one wins the client."""

from __future__ import annotations

import asyncio

from upstream.attempt import Head, walk
from upstream.failure import Failure
from upstream.hedge import Contender, Race


class Client:
    """The client end of a race: records what reached it."""

    def __init__(self) -> None:
        self.exchange = None
        self.heads: list[Head] = []
        self.sent: list[bytes] = []

    @property
    def committed(self) -> bool:
        return bool(self.sent)

    @property
    def over(self) -> bool:
        return False

    def claim(self) -> bool:
        return True

    def begin(self, head: Head) -> None:
        self.heads.append(head)

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def end(self, body: bytes) -> None:
        self.sent.append(body)

    def end_stream(self, label: str, kind: str, message: str) -> None:
        self.sent.append(message.encode())


def run_race(delays: dict[str, float], fail: frozenset[str] = frozenset(), hedge_after: float = 0.02):
    """Walk targets whose tries answer (or fail) after `delays`; the log of starts, ends and cancels."""
    client = Client()
    race = Race(client)
    log: list[str] = []

    async def try_one(target: str, more: bool) -> Failure | None:
        sink = race.enter()
        log.append(f"start {target}")
        try:
            await asyncio.sleep(delays[target])
        except asyncio.CancelledError:
            log.append(f"cancelled {target}")
            raise
        if target in fail:
            log.append(f"failed {target}")
            return Failure("p", target, 500, "http_500", "boom")
        sink.begin(Head(200, ()))
        sink.send(target.encode())
        log.append(f"answered {target}")
        return None

    async def main() -> list[Failure] | None:
        return await walk(list(delays), try_one, lambda: False, hedge_after=hedge_after,
                          answering=lambda: client.committed, pause=lambda n: 0.0)

    failures = asyncio.run(main())
    return failures, log, client


def test_a_quick_first_target_is_never_hedged() -> None:
    failures, log, client = run_race({"a": 0.0, "b": 0.0})
    assert failures is None
    assert log == ["start a", "answered a"]
    assert client.sent == [b"a"]


def test_a_slow_first_target_gets_a_hedge_and_the_quicker_answer_wins() -> None:
    failures, log, client = run_race({"a": 5.0, "b": 0.0})
    assert failures is None
    assert log == ["start a", "start b", "answered b", "cancelled a"]
    assert client.sent == [b"b"] and len(client.heads) == 1


def test_the_first_target_still_wins_when_it_answers_before_the_hedge() -> None:
    failures, log, client = run_race({"a": 0.05, "b": 5.0})
    assert failures is None
    assert log == ["start a", "start b", "answered a", "cancelled b"]
    assert client.sent == [b"a"]


def test_a_failed_hedge_leaves_the_first_try_running_and_the_next_target_hedges_it() -> None:
    failures, log, client = run_race({"a": 0.2, "b": 0.0, "c": 5.0}, fail=frozenset({"b"}))
    assert failures is None
    assert log[:3] == ["start a", "start b", "failed b"]
    assert "answered a" in log and client.sent == [b"a"]


def test_when_every_try_fails_the_walk_returns_every_failure() -> None:
    failures, log, client = run_race({"a": 0.05, "b": 0.0}, fail=frozenset({"a", "b"}))
    assert failures is not None and [f.label for f in failures] == ["b", "a"]
    assert client.sent == []


def test_a_loser_sending_after_the_winner_claimed_reaches_nobody() -> None:
    client = Client()
    race = Race(client)

    async def enter() -> Contender:
        return race.enter()

    async def main() -> None:
        first, second = await asyncio.create_task(enter()), await asyncio.create_task(enter())
        first.send(b"first")
        second.send(b"second")
        assert second.over and not second.claim()

    asyncio.run(main())
    assert client.sent == [b"first"]


def test_the_winners_own_earlier_try_does_not_cancel_it() -> None:
    """A lane that failed once and answers on its retry keeps running when it claims the client."""
    client = Client()
    race = Race(client)
    log: list[str] = []

    async def lane() -> None:
        race.enter()  # the first try, which failed
        second = race.enter()
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_soon(second.send, b"answer")  # as a curl callback would
        await asyncio.sleep(0.01)
        log.append("finished")

    asyncio.run(lane())
    assert log == ["finished"] and client.sent == [b"answer"]
