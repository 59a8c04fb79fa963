"""One request to one target, and the walk over targets until one answers.

`attempt` sends one request and reports how it ended: relayed (the answer went to the
sink as it arrived), kept (the caller reads the whole answer: a buffered chat answer, or
an error another target may fix), broken (it failed after bytes reached the client), or
a Failure before the first byte. `walk` tries targets in order (each as often as its retry
policy says, with a jittered back-off) while nothing has reached the client and the failure
is one the policy retries.

The attempt writes only to a Sink: the client (handlers/base.py), or a stage standing in
front of it that captures or transforms the answer (stages/).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Protocol, TypeVar

from converters.base import Chain
from converters.sse import EventTooLarge
from converters.stream_start import StreamRefused
from dsl.table import Provider, RetryPolicy
from ops import metrics
from upstream.body_pipe import BodyPipe
from upstream.breaker import BreakerBoard, TargetKey
from upstream.client import UpstreamClient
from upstream.exchange import Exchange
from upstream.failure import (
    CIRCUIT_OPEN,
    CONTEXT_OVERFLOW,
    Failure,
    answered_with_error,
    error_kind,
    retried_on,
)

log = logging.getLogger("gateway.upstream")

MAX_KEPT_ERROR = 64 * 1024  # of an error answer that is kept, not relayed: enough for its message
DEFAULT_POLICY = RetryPolicy()

Candidate = TypeVar("Candidate")
# What takes a relayed answer's chunks from libcurl's write callback: None, or its pause code.
Deliver = Callable[[bytes], int | None]


@dataclass(slots=True)
class Head:
    """The status and headers an answer starts with. `upstream`: they are the provider's own,
    relayed in place of the gateway's (all but its request id); else added to them, and named
    as the gateway names its own, in Http-Header-Case (`Content-Type`: taken as they are).

    Not frozen, though never changed: one is made per answer, and a frozen dataclass sets each
    field through object.__setattr__ (5.8 K instructions to make this one, 1.9 K unfrozen)."""

    status: int
    headers: Sequence[tuple[str, str]]
    upstream: bool = False


class Sink(Protocol):
    """Where an attempt delivers what it relays, and whom it tells about the exchange."""

    # The exchange in progress: held while the client is behind, cancelled when it leaves.
    exchange: Exchange | None

    @property
    def committed(self) -> bool:
        """Bytes of an answer have reached the client: no other target may answer now."""
        ...

    @property
    def over(self) -> bool:
        """The client left, or its answer has ended (or another try's answer won it)."""
        ...

    def claim(self) -> bool:
        """This try is about to answer: False when another try already does (hedging)."""
        ...

    def begin(self, head: Head) -> None:
        """The answer's status and headers, before its first bytes."""
        ...

    def send(self, data: bytes) -> None:
        """Relay answer bytes now."""
        ...

    def end(self, data: bytes) -> None:
        """The answer ends with `data` (after `begin`): a buffered answer whole, or what a
        relayed one held back to its end."""
        ...

    def end_stream(self, label: str, kind: str, message: str) -> None:
        """Stop relaying an answer that cannot be relayed on (and cancel the exchange)."""
        ...

    def deliver_steadily(self, exchange: Exchange, feed: Callable[[bytes], bytes], label: str) -> Deliver:
        """What takes a relayed stream's every later chunk straight from libcurl's write callback
        (asked once, after the client has had bytes twice): `steady_deliver`'s steps, which a
        sink may do in fewer calls (the client's own: handlers/base.py)."""
        ...


class StandIn:
    """Base of a sink standing in front of the client (a tool loop's round, a stage reading the
    answer first): the exchange stays the client's, so a client that leaves still cancels it,
    and a stand-in of its own always has the answer to itself."""

    def __init__(self, client: Sink) -> None:
        self.client = client

    @property
    def exchange(self) -> Exchange | None:
        return self.client.exchange

    @exchange.setter
    def exchange(self, exchange: Exchange | None) -> None:
        self.client.exchange = exchange

    def claim(self) -> bool:
        return True

    def deliver_steadily(self, exchange: Exchange, feed: Callable[[bytes], bytes], label: str) -> Deliver:
        return steady_deliver(exchange, feed, self, label)


class Reading(Protocol):
    """How a handler reads one answer: which answers it relays as they arrive, and how."""

    def relay(self, exchange: Exchange) -> bool:
        """The headers are in. True: relay the body as it arrives; False: keep it for the caller."""
        ...

    def head(self, exchange: Exchange) -> Head:
        """What a relayed answer starts with, asked once before its first bytes are sent."""
        ...

    def feed(self, data: bytes) -> bytes:
        """A relayed chunk, as the client gets it (may hold back an incomplete end, or a
        stream's start until it proves to be an answer: StreamRefused when it does not)."""
        ...

    def close(self) -> bytes:
        """The relayed answer ended cleanly: what was held back (StreamRefused: a stream that
        ended before any content)."""
        ...

    def settled_feed(self) -> Callable[[bytes], bytes]:
        """What `feed` comes down to once the answer's first bytes are out (asked once, after):
        a stream's every later chunk goes to it, one step shorter where the reading can tell."""
        ...

    def cut(self) -> bytes:
        """The upstream failed after part of the answer was relayed: what of what was held
        back may still go out, before the error event."""
        ...


class Converted:
    """A reading whose relayed output then passes through `chain` (a route's answer stages)."""

    __slots__ = ("_reading", "_chain")

    def __init__(self, reading: Reading, chain: Chain) -> None:
        self._reading = reading
        self._chain = chain

    def relay(self, exchange: Exchange) -> bool:
        return self._reading.relay(exchange)

    def head(self, exchange: Exchange) -> Head:
        return self._reading.head(exchange)

    def feed(self, data: bytes) -> bytes:
        out = self._reading.feed(data)
        return self._chain.feed(out) if out else b""

    def settled_feed(self) -> Callable[[bytes], bytes]:
        return self.feed

    def close(self) -> bytes:
        out = self._reading.close()
        return (self._chain.feed(out) if out else b"") + self._chain.close()

    def cut(self) -> bytes:
        out = self._reading.cut()
        return (self._chain.feed(out) if out else b"") + self._chain.cut()


# Not frozen, as Head above: made per request.
@dataclass(slots=True)
class UpstreamRequest:
    """One request for one target."""

    provider: Provider
    label: str  # how messages name the target
    url: str
    method: str
    body: bytes | BodyPipe | None
    headers: Iterable[tuple[str, str]]
    request_id: str | None = None  # sent as x-request-id after `headers`


# The outcomes: not frozen either, one per try.
@dataclass(slots=True)
class Relayed:
    """The answer went to the sink as it arrived; `tail` is what the reading held back to the end."""

    exchange: Exchange
    tail: bytes


@dataclass(slots=True)
class Kept:
    """The whole answer, not relayed (an error answer is cut at MAX_KEPT_ERROR)."""

    exchange: Exchange
    body: bytes


@dataclass(slots=True)
class Broken:
    """The exchange failed after bytes of its answer reached the client; `tail` is what of
    what the reading held back may still reach it (Reading.cut)."""

    exchange: Exchange
    label: str
    message: str
    tail: bytes = b""
    kind: str = "transfer"  # as upstream/failure.py `error_kind` names it: timeout, transfer, ...


@dataclass(frozen=True, slots=True)
class Over:
    """The client left, or the sink ended its answer (an event too large to relay)."""


Outcome = Relayed | Kept | Broken | Over | Failure


async def attempt(client: UpstreamClient, request: UpstreamRequest, reading: Reading, sink: Sink) -> Outcome:
    """Send `request` and report how it ended (see the module docstring)."""
    run = _Try(request, reading, sink)
    exchange = sink.exchange = run.exchange = Exchange(client, run.on_headers, run.on_chunk)
    provider = request.provider
    started = time.monotonic()
    try:
        ended = await exchange.run(provider, request.url, request.method, request.body, request.headers,
                                   request.request_id)
    except asyncio.CancelledError:
        exchange.cancel()  # the walk's deadline passed, or another try won: stop the transfer too
        raise
    client.seconds[provider.name].observe(time.monotonic() - started)
    if run.refused is not None:
        return _refusal(request, run.refused)
    if sink.over:
        return Over()
    if ended.failed:
        kind = error_kind(ended)
        if sink.committed:
            metrics.UPSTREAM_ERRORS.labels(provider=provider.name, kind=kind).inc()
            log.warning("upstream %s failed mid-stream: %s", request.label, ended.message)
            return Broken(exchange, request.label, ended.message, reading.cut(), kind)
        return Failure(provider.name, request.label, 0, kind, ended.message)
    if not run.relaying:
        return Kept(exchange, b"".join(run.kept))
    try:
        tail = reading.close()
    except EventTooLarge as exc:
        if run.begin():
            sink.end_stream(request.label, "event_too_large", str(exc))
        return Over()
    except StreamRefused as exc:
        return _refusal(request, exc)
    if not run.begin():
        return Over()
    return Relayed(exchange, tail)


class _Try:
    """What one attempt's exchange calls back as its answer comes in, and what they find out: an
    object with two bound methods, which cost less to make than three closures and their cells."""

    __slots__ = ("request", "reading", "sink", "exchange", "relaying", "begun", "refused", "kept", "size")

    def __init__(self, request: UpstreamRequest, reading: Reading, sink: Sink) -> None:
        self.request = request
        self.reading = reading
        self.sink = sink
        self.exchange: Exchange  # set as soon as it is made (it is made with these methods)
        self.relaying = False
        self.begun = False
        self.refused: StreamRefused | None = None
        self.kept: list[bytes] = []
        self.size = 0

    def on_headers(self, exchange: Exchange) -> None:
        self.relaying = self.reading.relay(exchange)

    def begin(self) -> bool:
        """Claim the client and send it the head, once; False when another try has it."""
        if not self.begun:
            if not self.sink.claim():
                self.exchange.cancel()
                return False
            self.begun = True
            self.sink.begin(self.reading.head(self.exchange))
        return True

    def on_chunk(self, data: bytes) -> None:
        exchange, sink = self.exchange, self.sink
        if self.relaying:
            reading = self.reading
            try:
                out = reading.feed(data)
            except EventTooLarge as exc:
                if self.begin():
                    sink.end_stream(self.request.label, "event_too_large", str(exc))
                return None
            except StreamRefused as exc:
                self.refused = exc
                return exchange.cancel()
            if not out:
                return None
            if self.begun:  # bytes for the client again: a stream, whose later chunks go straight
                steady = sink.deliver_steadily(exchange, reading.settled_feed(), self.request.label)
                exchange.relay_straight(steady)
            elif not self.begin():
                return None
            sink.send(out)
        elif self.size < MAX_KEPT_ERROR or 200 <= exchange.status < 300:
            self.kept.append(data)
            self.size += len(data)
        return None


def steady_deliver(exchange: Exchange, feed: Callable[[bytes], bytes], sink: Sink, label: str) -> Deliver:
    """What takes a relayed answer's every chunk once the client has had bytes of it twice (a
    stream), straight from libcurl's write callback (Exchange.relay_straight): the exchange's
    `receive`, the attempt's `on_chunk` and the reading's `feed` in one call, each event a few
    steps shorter. Past the answer's start (converters/stream_start.py), only an event too
    large can stop the relay. Sink.deliver_steadily gives it, or what does the same."""
    send = sink.send

    def deliver(data: bytes) -> int | None:
        if exchange.held:
            return exchange.pause_receiving()
        if not exchange.done:
            try:
                out = feed(data)
            except EventTooLarge as exc:
                sink.end_stream(label, "event_too_large", str(exc))
                return None
            if out:
                send(out)
        return None

    return deliver


def _refusal(request: UpstreamRequest, refused: StreamRefused) -> Failure:
    """A stream that answered 2xx, then sent an error event or ended before any content."""
    name, label = request.provider.name, request.label
    if refused.error is None:
        return Failure(name, label, refused.status, "empty", "upstream stream ended before any content")
    return answered_with_error(name, label, refused.status, refused.error)


def walk(
    candidates: Sequence[Candidate],
    try_one: Callable[[Candidate, bool], Awaitable[Failure | None]],
    gone: Callable[[], bool],
    *,
    replayable: bool = True,
    policy: RetryPolicy = DEFAULT_POLICY,
    answering: Callable[[], bool] = lambda: False,
    pause: Callable[[int], float] | None = None,
    clock: Callable[[], float] = time.monotonic,
    breakers: BreakerBoard | None = None,
    key: Callable[[Candidate], TargetKey] | None = None,
    skipped: Callable[[Candidate], None] | None = None,
    admit: Callable[[Candidate], Awaitable[Failure | None]] | None = None,
    hedge_after: float | None = None,
) -> Coroutine[None, None, list[Failure] | None]:
    """Try `candidates` in order, each up to `policy.attempts` times, until one answers; None
    when one did (or the client left), else the failures, the last one final.

    `try_one(candidate, more)` gets `more` True when another try would follow a failure (the
    request can be replayed and this is not the last try): it may then keep an answer it would
    otherwise relay. A failure is tried again only when `policy.when` names it, after a pause
    (`pause`, default the policy's jittered back-off). Each failure is counted by provider and
    kind, each retry of a target by its outcome.

    With `policy.deadline`, no try starts after it, and a try still without an answer when it
    passes (`answering` false: nothing reached the client) is cancelled: the last failure is
    then a timeout (504). `clock` tells the time (tests give their own).

    With `breakers` (and `key`, naming a candidate's target), a candidate whose breaker is
    open is skipped without a network call (and told to `skipped`), and not tried again once
    it opens; each outcome is reported to its breaker. When every candidate is open, the one
    failure is `circuit_open`, with the soonest reopening as its Retry-After.

    With `admit`, each try first asks it (a target's own rate limits, say): a Failure it
    returns skips the candidate without a network call and without a breaker verdict.

    With `hedge_after`, a candidate still without an answer after that long has the next one
    tried beside it (two at a time at most); the first to claim the client answers (the
    tries' sinks arbitrate, upstream/hedge.py) and the other is cancelled.

    Not a coroutine itself: it returns the one that walks, so that a lone candidate's `_once`
    is awaited directly (one coroutine frame less per request, at each of its wake-ups).
    """
    if len(candidates) == 1 and policy.attempts == 1 and policy.deadline is None and admit is None:
        only = candidates[0]
        target = key(only) if breakers is not None and key is not None else None
        return _once(only, try_one, gone, breakers if target is not None else None, target, skipped)
    return _walk(candidates, try_one, gone, replayable, policy, answering, pause, clock, breakers, key,
                 skipped, admit, hedge_after)


async def _walk(
    candidates: Sequence[Candidate],
    try_one: Callable[[Candidate, bool], Awaitable[Failure | None]],
    gone: Callable[[], bool],
    replayable: bool,
    policy: RetryPolicy,
    answering: Callable[[], bool],
    pause: Callable[[int], float] | None,
    clock: Callable[[], float],
    breakers: BreakerBoard | None,
    key: Callable[[Candidate], TargetKey] | None,
    skipped: Callable[[Candidate], None] | None,
    admit: Callable[[Candidate], Awaitable[Failure | None]] | None,
    hedge_after: float | None,
) -> list[Failure] | None:
    """`walk` of more than one try (see there)."""
    keys: list[TargetKey] | None = None  # each candidate's target, with breakers
    if breakers is not None and key is not None:
        # map, not comprehensions: in Python 3.11 each comprehension is a call of its own.
        keys = list(map(key, candidates))
        usable = list(map(breakers.usable, keys))
        if not any(usable):
            return [all_open(breakers, keys)]
        if not all(usable):
            if skipped is not None:
                for candidate, ok in zip(candidates, usable, strict=True):
                    if not ok:
                        skipped(candidate)
            candidates, keys = list(compress(candidates, usable)), list(compress(keys, usable))
    run = _Walk(candidates, try_one, gone, replayable, policy, answering, pause, clock, breakers, keys,
                skipped, admit)
    if hedge_after is None or len(candidates) < 2:
        for index in range(len(candidates)):
            await run.lane(index, pause_first=True)
            if run.answered or run.final:  # run.over, without a call
                break
    else:
        await run.race(hedge_after)
    if run.answered:
        return None
    if not run.failures and breakers is not None and keys is not None:
        return [all_open(breakers, keys)]
    return run.failures


async def _once(
    candidate: Candidate,
    try_one: Callable[[Candidate, bool], Awaitable[Failure | None]],
    gone: Callable[[], bool],
    breakers: BreakerBoard | None,
    target: TargetKey | None,
    skipped: Callable[[Candidate], None] | None,
) -> list[Failure] | None:
    """The walk of one candidate tried once, with no deadline and no admission: most agents',
    every provider/model request's. What `_Walk.lane` does for that one try, without the walk's
    state object and the steps it needs only for more tries (some 10 K instructions a request).
    `target`: the candidate's breaker key, with `breakers`."""
    if breakers is not None and target is not None and not breakers.closed(target):
        if not breakers.usable(target):
            return [all_open(breakers, (target,))]  # as `walk` checks every candidate first
        if gone():
            return None
        if not breakers.admit(target):
            if skipped is not None:
                skipped(candidate)
            return [all_open(breakers, (target,))]
    elif gone():  # closed: usable, and admitted without a probe's place taken
        return None
    reported = False
    try:
        failure = await try_one(candidate, False)
        if breakers is not None and target is not None and not gone():
            breakers.record(target, failure)
            reported = True
    finally:
        if breakers is not None and target is not None and not reported:
            breakers.release(target)  # the client left (or the attempt raised): no verdict
    if failure is None:
        return None
    metrics.UPSTREAM_ERRORS.labels(provider=failure.provider, kind=failure.kind).inc()
    return [failure]


class _Walk:
    """One walk's state: its tries so far, their failures, and whether it is over."""

    __slots__ = ("candidates", "try_one", "gone", "replayable", "policy", "answering", "wait", "clock",
                 "breakers", "keys", "skipped", "admit", "ends", "failures", "tries", "answered", "final")

    def __init__(
        self,
        candidates: Sequence[Candidate],
        try_one: Callable[[Candidate, bool], Awaitable[Failure | None]],
        gone: Callable[[], bool],
        replayable: bool,
        policy: RetryPolicy,
        answering: Callable[[], bool],
        pause: Callable[[int], float] | None,
        clock: Callable[[], float],
        breakers: BreakerBoard | None,
        keys: Sequence[TargetKey] | None,
        skipped: Callable[[Candidate], None] | None,
        admit: Callable[[Candidate], Awaitable[Failure | None]] | None,
    ) -> None:
        self.candidates = candidates
        self.try_one = try_one
        self.gone = gone
        self.replayable = replayable
        self.policy = policy
        self.answering = answering
        self.wait = policy.pause if pause is None else pause
        self.clock = clock
        self.breakers = breakers if keys is not None else None
        self.keys = keys
        self.skipped = skipped
        self.admit = admit
        self.ends = None if policy.deadline is None else clock() + policy.deadline
        self.failures: list[Failure] = []
        self.tries = 0
        self.answered = False  # a try answered, or the client left
        self.final = False  # a failure no further try may fix (or the deadline passed)

    @property
    def over(self) -> bool:
        return self.answered or self.final

    async def lane(self, index: int, *, pause_first: bool) -> None:
        """Every try of candidate `index`, until it answers or gives up."""
        candidate = self.candidates[index]
        breakers, policy = self.breakers, self.policy
        target = self.keys[index] if breakers is not None and self.keys is not None else None
        for again in range(policy.attempts):
            if self.tries and (again or pause_first):
                delay = self.wait(self.tries)
                ends = self.ends
                await asyncio.sleep(delay if ends is None else max(0.0, min(delay, ends - self.clock())))
            if self.gone() or self.answered or self.final:
                self.answered = self.answered or self.gone()
                return
            if self.ends is not None and self.clock() >= self.ends:
                self.failures.append(past_deadline(target, policy.deadline))
                self.final = True
                return
            if target is not None and breakers is not None and not breakers.admit(target):
                if self.skipped is not None:
                    self.skipped(candidate)
                return  # open, or half-open with its probes all out: the next candidate
            if self.admit is not None:
                refused = await self.admit(candidate)
                if refused is not None:
                    if target is not None and breakers is not None:
                        breakers.release(target)  # admitted above, not tried: no verdict
                    self.failures.append(refused)
                    return
            last = index + 1 == len(self.candidates) and again + 1 == policy.attempts
            more = self.replayable and not last
            self.tries += 1
            # The try runs in the walk's own task (so that profiles show the handler around it),
            # cut at the deadline unless its answer is already reaching the client; its outcome
            # goes to the target's breaker (a cut try counts as a timeout).
            cut = None if self.ends is None else _Cut(self.ends - self.clock(), self.answering)
            reported = False
            try:
                try:
                    failure = await self.try_one(candidate, more)
                except asyncio.CancelledError:
                    if cut is None or not cut.taken_back():
                        raise  # the client left, not the deadline
                    failure = past_deadline(target, policy.deadline)
                else:
                    if cut is not None:
                        cut.ignore()  # it came as the try ended: the try answered in time
                if target is not None and breakers is not None and not self.gone():
                    breakers.record(target, failure)
                    reported = True
            finally:
                if cut is not None:
                    cut.timer.cancel()
                if target is not None and breakers is not None and not reported:
                    breakers.release(target)  # the client left (or the attempt raised): no verdict
            if again:
                provider = failure.provider if failure is not None else (target[0] if target else "upstream")
                outcome = "failed" if failure is not None else "answered"
                metrics.RETRIES.labels(provider=provider, outcome=outcome).inc()
            if failure is None:
                self.answered = True
                return
            self.failures.append(failure)
            metrics.UPSTREAM_ERRORS.labels(provider=failure.provider, kind=failure.kind).inc()
            if failure.kind == CONTEXT_OVERFLOW:
                return  # too long for this target, and so for any retry of it; a larger one may do
            if not (self.replayable and retried_on(failure, policy.when)):
                self.final = True  # no other target may fix it (a hedge still running is cancelled)
                return
            if last:
                return

    async def race(self, hedge_after: float) -> None:
        """The lanes with hedging: the next starts when the last started has no answer after
        `hedge_after`, or at once when every running one gave up."""
        running: dict[asyncio.Task[None], int] = {}
        started = 0
        hedged_from: int | None = None  # the lane that was running when the hedge started
        try:
            while not self.over:
                if not running:
                    if started == len(self.candidates):
                        break
                    running[asyncio.ensure_future(self.lane(started, pause_first=True))] = started
                    started += 1
                can_hedge = len(running) < 2 and started < len(self.candidates) and not self.answering()
                done, _ = await asyncio.wait(running, timeout=hedge_after if can_hedge else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    if self.gone():
                        continue
                    hedged_from = next(iter(running.values()))
                    running[asyncio.ensure_future(self.lane(started, pause_first=False))] = started
                    metrics.HEDGES.labels(outcome="started").inc()
                    started += 1
                    continue
                for task in done:
                    index = running.pop(task)
                    if not task.cancelled():
                        task.result()  # a lane's own error is the walk's
                    if self.answered and not task.cancelled() and hedged_from is not None:
                        outcome = "first_answered" if index == hedged_from else "hedge_answered"
                        metrics.HEDGES.labels(outcome=outcome).inc()
                        hedged_from = None
            if hedged_from is not None and not self.answered:
                metrics.HEDGES.labels(outcome="failed").inc()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)


class _Cut:
    """A try's cut at the walk's deadline: the walk's task is cancelled then, unless the try's
    answer is already reaching the client (`answering`)."""

    __slots__ = ("task", "answering", "fired", "timer")

    def __init__(self, remaining: float, answering: Callable[[], bool]) -> None:
        self.task = asyncio.current_task()
        self.answering = answering
        self.fired = False
        self.timer = asyncio.get_running_loop().call_later(remaining, self._fire)

    def _fire(self) -> None:
        if self.task is not None and not self.answering():
            self.fired = True
            self.task.cancel()

    def taken_back(self) -> bool:
        """The try was cancelled: True when by the deadline (that cancellation taken back)."""
        return self.fired and self.task is not None and not self.task.uncancel()

    def ignore(self) -> None:
        """The try ended as the deadline fired: its cancellation is taken back."""
        if self.fired and self.task is not None:
            self.task.uncancel()


def past_deadline(target: TargetKey | None, deadline: float | None) -> Failure:
    """The walk's deadline passed before any target answered: the client gets 504."""
    provider, label = (target[0], "/".join(target)) if target is not None else ("upstream", "upstream")
    message = f"no answer within the retry deadline of {deadline or 0:g}s"
    return Failure(provider, label, 0, "timeout", message)


def all_open(breakers: BreakerBoard, keys: Sequence[TargetKey]) -> Failure:
    """The failure of a walk whose every target's breaker is open."""
    seconds = max(1, math.ceil(breakers.reopens_in(keys)))
    names = ", ".join(f"{p}/{m}" for p, m in keys[:5]) + (", ..." if len(keys) > 5 else "")
    message = f"every target is resting after failures (circuit open: {names}); retry in {seconds}s"
    return Failure(keys[0][0], "circuit", 503, CIRCUIT_OPEN, message, str(seconds))
