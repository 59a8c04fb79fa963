"""Hedged tries: two tries of one request in flight at once, and one client to answer.

When an agent hedges (routes.yaml `hedge_after`), the walk (upstream/attempt.py) starts
the next target while the first has not answered. Each try then writes to its own
Contender, which stands for the client: the first to claim it answers, and every other
try is cancelled there and then (its task, and its upstream transfer with it), so the
provider sees the disconnect at once and no byte of a losing answer is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from upstream.attempt import Deliver, Head, Sink, steady_deliver
from upstream.exchange import Exchange


class Race:
    """The contenders of one request, and which of them won the client."""

    __slots__ = ("client", "contenders", "winner")

    def __init__(self, client: Sink) -> None:
        self.client = client
        self.contenders: list[Contender] = []
        self.winner: Contender | None = None

    def enter(self) -> Contender:
        """A sink for the try running in the current task."""
        contender = Contender(self, asyncio.current_task())
        self.contenders.append(contender)
        return contender

    def claim(self, contender: Contender) -> bool:
        if self.winner is None:
            self.winner = contender
            self.client.exchange = contender.exchange
            for other in self.contenders:
                if other.task is not contender.task:  # an earlier try of the winner's own lane ended already
                    other.drop()
        return self.winner is contender

    def cancel(self) -> None:
        """The client left: stop every try's transfer."""
        for contender in self.contenders:
            if contender.exchange is not None:
                contender.exchange.cancel()


class Contender:
    """One try's sink: the client's, once this try has claimed it (see the module docstring)."""

    __slots__ = ("race", "task", "exchange", "lost")

    def __init__(self, race: Race, task: asyncio.Task | None) -> None:
        self.race = race
        self.task = task
        self.exchange: Exchange | None = None
        self.lost = False

    def drop(self) -> None:
        """Another try answers the client: stop this one."""
        self.lost = True
        if self.exchange is not None:
            self.exchange.cancel()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    @property
    def committed(self) -> bool:
        return self.race.client.committed

    @property
    def over(self) -> bool:
        return self.lost or self.race.client.over

    def claim(self) -> bool:
        return not self.lost and self.race.claim(self)

    def begin(self, head: Head) -> None:
        if self.claim():
            self.race.client.begin(head)

    def send(self, data: bytes) -> None:
        if self.claim():
            self.race.client.send(data)

    def end(self, body: bytes) -> None:
        if self.claim():
            self.race.client.end(body)

    def end_stream(self, label: str, kind: str, message: str) -> None:
        if self.claim():
            self.race.client.end_stream(label, kind, message)

    def deliver_steadily(self, exchange: Exchange, feed: Callable[[bytes], bytes], label: str) -> Deliver:
        return steady_deliver(exchange, feed, self, label)
