"""In process: the circuit breaker's state machine, on a clock the test moves (no sleeps)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from dsl.table import BreakerSettings
from upstream.attempt import walk
from upstream.breaker import (
    ALL_TARGETS,
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerBoard,
    counts_against,
    retry_after_seconds,
)
from upstream.failure import Failure, agent_answer, relay_answer, status_kind

SETTINGS = BreakerSettings(failures=3, window=10.0, cooldown=5.0, max_cooldown=18.0, probes=1, successes=2,
                           key_refused_cooldown=100.0)
TARGET = ("p", "m")
OTHER = ("p", "n")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(status: int = 500, kind: str = "", retry_after: str | None = None) -> Failure:
    return Failure("p", "p/m", status, kind or status_kind(status), "boom", retry_after)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def board(clock: Clock) -> BreakerBoard:
    return BreakerBoard(SETTINGS, clock=clock, wall=lambda: 1_700_000_000.0)


def state(board: BreakerBoard, key: tuple[str, str] = TARGET) -> str:
    return board.breakers[key].state


def fail_times(board: BreakerBoard, n: int, key: tuple[str, str] = TARGET, **kind: object) -> None:
    for _ in range(n):
        assert board.admit(key)
        board.record(key, fail(**kind))  # type: ignore[arg-type]


def test_failures_within_the_window_open_then_cooldown_half_opens_and_successes_close(board, clock):
    fail_times(board, 2)
    assert state(board) == CLOSED
    fail_times(board, 1)
    assert state(board) == OPEN and not board.usable(TARGET)
    assert board.reopens_in([TARGET]) == pytest.approx(5.0)
    clock.now += 5.0
    assert board.admit(TARGET) and state(board) == HALF_OPEN
    assert not board.admit(TARGET)  # one probe at a time
    board.record(TARGET, None)
    assert state(board) == HALF_OPEN
    assert board.admit(TARGET)
    board.record(TARGET, None)
    assert state(board) == CLOSED
    assert board.breakers[TARGET].trips == 1


def test_failures_older_than_the_window_do_not_count(board, clock):
    fail_times(board, 2)
    clock.now += 10.5
    fail_times(board, 2)
    assert state(board) == CLOSED


def test_a_failure_ratio_opens_once_the_window_holds_enough_requests(clock):
    settings = BreakerSettings(failures=100, window=10.0, failure_ratio=0.5, min_requests=6)
    board = BreakerBoard(settings, clock=clock)
    for _ in range(2):
        board.admit(TARGET)
        board.record(TARGET, None)
    fail_times(board, 3)  # 3 of 5 failed, but 5 requests are too few to judge
    assert state(board) == CLOSED
    fail_times(board, 1)  # 4 of 6
    assert state(board) == OPEN


def test_a_failure_ratio_forgets_requests_older_than_the_window(clock):
    board = BreakerBoard(BreakerSettings(failures=100, window=10.0, failure_ratio=0.5, min_requests=4),
                         clock=clock)
    fail_times(board, 3)
    clock.now += 11
    for _ in range(3):
        board.admit(TARGET)
        board.record(TARGET, None)
    fail_times(board, 1)  # 1 of 4 in the window
    assert state(board) == CLOSED


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_maximum(board, clock):
    fail_times(board, 3)
    for cooldown in (10.0, 18.0, 18.0):
        clock.now += 100
        fail_times(board, 1)
        assert state(board) == OPEN
        assert board.reopens_in([TARGET]) == pytest.approx(cooldown)
    clock.now += 100
    for _ in range(2):
        assert board.admit(TARGET)
        board.record(TARGET, None)
    fail_times(board, 3)  # closed again: the cooldown starts over
    assert board.reopens_in([TARGET]) == pytest.approx(5.0)


def test_a_clients_own_4xx_does_not_count_and_a_probe_answering_400_closes(board, clock):
    for status in (400, 404, 422):
        fail_times(board, 3, status=status)
    assert state(board) == CLOSED
    assert not counts_against(fail(0, "unsupported_format"))
    assert counts_against(fail(0, "timeout")) and counts_against(fail(200, "empty"))


def test_a_refused_key_opens_every_target_of_the_provider_for_long(board, clock):
    board.admit(OTHER)
    board.record(OTHER, None)
    fail_times(board, 1, status=401)
    assert state(board) == OPEN and state(board, OTHER) == OPEN
    assert not board.usable(("p", "never-seen")) and board.usable(("q", "m"))
    clock.now += 99
    assert not board.usable(OTHER)
    clock.now += 1
    assert board.usable(OTHER) and board.usable(("p", "never-seen"))


def test_a_429_locks_until_its_retry_after_in_seconds_or_as_a_date(board, clock):
    fail_times(board, 1, status=429, retry_after="7")
    assert state(board) == OPEN and board.reopens_in([TARGET]) == pytest.approx(7.0)
    clock.now += 7
    assert board.admit(TARGET)
    date = format_datetime(datetime.fromtimestamp(1_700_000_000 + 42, UTC), usegmt=True)
    board.record(TARGET, fail(429, retry_after=date))
    assert board.reopens_in([TARGET]) == pytest.approx(42.0)


def test_a_429_without_retry_after_backs_off_exponentially(board, clock):
    waits = []
    for _ in range(4):
        fail_times(board, 1, status=429)
        waits.append(board.reopens_in([TARGET]))
        clock.now += 100
    assert waits == [5.0, 10.0, 18.0, 18.0]


def test_retry_after_values():
    assert retry_after_seconds("3", 0.0) == 3.0
    assert retry_after_seconds(None, 0.0) is None
    assert retry_after_seconds("soon", 0.0) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 + 10) == 0.0


def test_disabled_breakers_admit_everything(clock):
    board = BreakerBoard(BreakerSettings(enabled=False), clock=clock)
    for _ in range(10):
        assert board.admit(TARGET)
        board.record(TARGET, fail())
    assert board.usable(TARGET)


def test_reconfiguring_keeps_the_targets_of_remaining_providers(board):
    fail_times(board, 3)
    fail_times(board, 3, key=("gone", "m"))
    board.configure(SETTINGS, {"p": SETTINGS})
    assert state(board) == OPEN and ("gone", "m") not in board.breakers


def test_a_providers_own_settings_apply_to_its_targets_only(clock):
    board = BreakerBoard(SETTINGS, clock=clock)
    board.configure(SETTINGS, {"p": SETTINGS, "hasty": replace(SETTINGS, failures=1, cooldown=0.5)})
    fail_times(board, 1, key=("hasty", "m"))
    fail_times(board, 2)
    assert state(board, ("hasty", "m")) == OPEN and state(board) == CLOSED
    assert board.reopens_in([("hasty", "m")]) == pytest.approx(0.5)
    clock.now += 0.5
    assert board.usable(("hasty", "m")) and board.snapshot()["hasty/m"]["state"] == OPEN


def test_a_provider_with_breakers_disabled_is_always_admitted_while_others_trip(clock):
    board = BreakerBoard(SETTINGS, clock=clock)
    board.configure(SETTINGS, {"p": SETTINGS, "exempt": replace(SETTINGS, enabled=False)})
    fail_times(board, 10, key=("exempt", "m"))
    fail_times(board, 1, key=("exempt", "m"), status=401)
    assert board.usable(("exempt", "m")) and ("exempt", "m") not in board.breakers
    fail_times(board, 3)
    assert state(board) == OPEN


def test_reloaded_provider_settings_apply_and_the_state_stays(clock):
    board = BreakerBoard(SETTINGS, clock=clock)
    fail_times(board, 2, key=OTHER)  # closed, two failures counted
    fail_times(board, 3)
    board.configure(SETTINGS, {"p": replace(SETTINGS, failures=3, cooldown=1.0, max_cooldown=3.0)})
    assert state(board) == OPEN and board.reopens_in([TARGET]) == pytest.approx(5.0)  # as it was given
    clock.now += 5
    fail_times(board, 1)  # a failed probe: the new cooldown, doubled
    assert board.reopens_in([TARGET]) == pytest.approx(2.0)
    fail_times(board, 1, key=OTHER)  # the third failure in the window: the new cooldown
    assert state(board, OTHER) == OPEN and board.reopens_in([OTHER]) == pytest.approx(1.0)
    board.configure(SETTINGS, {"p": replace(SETTINGS, enabled=False)})
    assert board.breakers == {} and board.usable(TARGET)


def test_snapshot_shows_state_failures_trips_and_reopening(board):
    fail_times(board, 1, key=OTHER)
    fail_times(board, 3)
    snap = board.snapshot()
    assert snap["p/m"] == {"state": OPEN, "recent_failures": 0, "trips": 1, "reopens_at": 1_700_000_005.0,
                           "shared": None}
    assert snap["p/n"] == {"state": CLOSED, "recent_failures": 1, "trips": 0, "reopens_at": None, "shared": None}


def run_walk(board: BreakerBoard, outcomes: dict[str, Failure | None], calls: list[str]) -> list[Failure] | None:
    async def try_one(name: str, more: bool) -> Failure | None:
        calls.append(name)
        return outcomes[name]

    return asyncio.run(walk(list(outcomes), try_one, lambda: False, pause=lambda _: 0.0, breakers=board,
                            key=lambda name: ("p", name)))


def test_walk_skips_an_open_target_without_trying_it(board):
    calls: list[str] = []
    for _ in range(3):
        run_walk(board, {"bad": fail(), "good": None}, calls)
    assert calls == ["bad", "good"] * 3
    calls.clear()
    assert run_walk(board, {"bad": fail(), "good": None}, calls) is None
    assert calls == ["good"]


def test_walk_with_every_target_open_answers_503_with_the_soonest_reopening(board, clock):
    fail_times(board, 3, key=("p", "a"))
    clock.now += 2
    fail_times(board, 3, key=("p", "b"))
    calls: list[str] = []
    failures = run_walk(board, {"a": None, "b": None}, calls)
    assert calls == [] and failures is not None
    for answer in (agent_answer(failures), relay_answer(failures[-1])):
        assert answer.status == 503 and answer.code == "circuit_open"
        assert answer.headers == {"Retry-After": "3"}


# Openings shared with other processes: told to on_open as wall-clock times, applied by opened_elsewhere.
WALL = 1_699_999_000.0  # the wall clock's lead over the test's monotonic clock


@pytest.fixture
def shared(clock: Clock) -> tuple[BreakerBoard, list[tuple[tuple[str, str], float, str]]]:
    """A board whose wall clock moves with its monotonic one, and the openings it told."""
    board = BreakerBoard(SETTINGS, clock=clock, wall=lambda: clock.now + WALL)
    told: list[tuple[tuple[str, str], float, str]] = []
    board.on_open = lambda key, until, reason: told.append((key, until, reason))
    return board, told


def test_each_local_opening_is_told_with_its_wall_clock_time_and_reason(shared, clock):
    board, told = shared
    fail_times(board, 3)
    assert told == [(TARGET, clock.now + WALL + 5.0, "failures")]
    clock.now += 5.0
    fail_times(board, 1)  # the probe fails: the cooldown doubles
    assert told[1:] == [(TARGET, clock.now + WALL + 10.0, "probe_failed")]
    fail_times(board, 1, key=OTHER, status=429, retry_after="7")
    assert told[2:] == [(OTHER, clock.now + WALL + 7.0, "rate_limited")]
    fail_times(board, 1, key=("p", "x"), status=401)  # the whole provider, told once
    assert told[3:] == [(("p", ALL_TARGETS), clock.now + WALL + 100.0, "key_refused")]


def test_an_opening_elsewhere_opens_here_until_its_time_then_probes_here(shared, clock):
    board, told = shared
    board.opened_elsewhere(TARGET, clock.now + WALL + 5.0, "failures")
    assert state(board) == OPEN and not board.usable(TARGET) and board.usable(OTHER)
    assert board.reopens_in([TARGET]) == pytest.approx(5.0)
    assert board.snapshot()["p/m"]["shared"] == "failures"
    assert told == []  # not told back: it is not this process's own
    clock.now += 5.0
    assert board.admit(TARGET) and state(board) == HALF_OPEN
    board.record(TARGET, None)
    assert board.admit(TARGET)
    board.record(TARGET, None)
    assert state(board) == CLOSED and board.snapshot()["p/m"]["shared"] is None


def test_its_own_opening_heard_back_changes_nothing_and_a_later_one_extends(shared, clock):
    board, told = shared
    fail_times(board, 3)
    for opening in told:
        board.opened_elsewhere(*opening)
    assert board.breakers[TARGET].trips == 1 and board.snapshot()["p/m"]["shared"] is None
    board.opened_elsewhere(TARGET, clock.now + WALL + 2.0, "rate_limited")  # sooner: no shorter
    assert board.reopens_in([TARGET]) == pytest.approx(5.0)
    board.opened_elsewhere(TARGET, clock.now + WALL + 60.0, "probe_failed")
    assert board.reopens_in([TARGET]) == pytest.approx(60.0) and board.breakers[TARGET].trips == 1
    assert board.snapshot()["p/m"]["shared"] == "probe_failed" and len(told) == 1


def test_a_key_refused_elsewhere_locks_the_whole_provider_here(shared, clock):
    board, told = shared
    fail_times(board, 1, key=TARGET, status=500)  # a breaker that exists, and one that does not yet
    board.opened_elsewhere(("p", ALL_TARGETS), clock.now + WALL + 100.0, "key_refused")
    assert not board.usable(TARGET) and not board.usable(("p", "new")) and board.usable(("q", "m"))
    assert board.snapshot()["p/m"]["shared"] == "key_refused" and told == []
    clock.now += 100.0
    assert board.usable(TARGET) and board.usable(("p", "new"))


def test_openings_elsewhere_that_are_over_or_of_a_provider_without_breakers_are_ignored(clock):
    board = BreakerBoard(SETTINGS, clock=clock, wall=lambda: clock.now + WALL)
    board.configure(SETTINGS, {"off": replace(SETTINGS, enabled=False)})
    board.opened_elsewhere(TARGET, clock.now + WALL - 1.0, "failures")
    board.opened_elsewhere(("off", "m"), clock.now + WALL + 50.0, "failures")
    board.opened_elsewhere(("off", ALL_TARGETS), clock.now + WALL + 50.0, "key_refused")
    assert board.usable(TARGET) and board.usable(("off", "m")) and board.breakers == {}


def test_a_lone_target_tried_once_is_not_tried_while_its_probe_is_out_and_reports_its_own_outcome(board, clock):
    """The walk of one candidate tried once (upstream/attempt.py `_once`) does what the lanes do."""
    calls: list[str] = []
    for _ in range(3):
        failures = run_walk(board, {"m": fail()}, calls)
        assert failures is not None and [f.status for f in failures] == [500]
    assert calls == ["m"] * 3 and state(board) == OPEN
    clock.now += SETTINGS.cooldown
    assert board.admit(TARGET) and state(board) == HALF_OPEN  # the one probe is out
    skipped: list[str] = []
    failures = asyncio.run(walk(["m"], lambda name, more: None, lambda: False, breakers=board,  # type: ignore[arg-type, return-value]
                                key=lambda name: ("p", name), skipped=skipped.append))
    assert skipped == [] and failures is not None and failures[0].kind == "circuit_open"  # none usable: not tried
    board.release(TARGET)

    left = False

    async def leaving(name: str, more: bool) -> Failure | None:
        nonlocal left
        assert not more
        left = True  # the client leaves during the try: no verdict, the probe's place is given back
        return None

    assert asyncio.run(walk(["m"], leaving, lambda: left, breakers=board, key=lambda name: ("p", name))) is None
    assert board.breakers[TARGET].probing == 0 and state(board) == HALF_OPEN
    assert run_walk(board, {"m": None}, calls) is None and run_walk(board, {"m": None}, calls) is None
    assert state(board) == CLOSED


def test_closed_says_true_only_where_usable_and_admit_would_change_nothing(board, clock):
    """`closed` spares a lone try's walk the calls of `usable` and `admit` (upstream/attempt.py `_once`)."""
    assert not board.closed(TARGET)  # no breaker yet: `admit` makes it
    assert board.admit(TARGET) and board.closed(TARGET)
    fail_times(board, 3)
    assert state(board) == OPEN and not board.closed(TARGET)
    clock.now += SETTINGS.cooldown
    assert board.admit(TARGET) and state(board) == HALF_OPEN and not board.closed(TARGET)
    board.record(TARGET, None)
    board.admit(TARGET)
    board.record(TARGET, None)
    assert state(board) == CLOSED and board.closed(TARGET)
    board.record(TARGET, fail(401))  # the provider refused the key: every target of it waits
    assert not board.closed(OTHER) and not board.closed(TARGET)
    off = BreakerBoard(replace(SETTINGS, enabled=False), clock=clock)
    assert off.closed(TARGET) and off.breakers == {}
