"""The process's upstream client: at most `limit` transfers at once, over reused handles.

One client per process (held by the runtime) serves every table, so a reload never
disturbs transfers in flight and upstream connections stay pooled across reloads.
A request beyond the limit waits its turn, in order, and may be cancelled while it
waits (server.upstream_connections sets the limit; the idle connections kept for
reuse are bounded by it too).

Past TRANSFERS_PER_DRIVER transfers at once, handles run on more than one multi handle
(upstream/driver.py), each pooling its own connections. libcurl looks for an idle
connection for every new transfer by walking the pool's connections to its host, busy
ones included, from the oldest: with a thousand streams to one provider that walk was
about 5 % of the gateway's CPU (perf). A handle is bound to one driver for its life, and
the idle handle taken is the last released, so a transfer mostly finds its handle's last
connection early in a pool of at most TRANSFERS_PER_DRIVER.

A transfer whose request has an idle timeout is watched (upstream/idle.py); one silent
that long is ended as a timeout, as libcurl ends one past its whole-transfer limit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Protocol

import pycurl

from ops import metrics
from upstream.driver import Driver
from upstream.ended import CANCELLED
from upstream.handle import Handle, Transfer
from upstream.idle import IdleWatch
from upstream.request import Request

log = logging.getLogger("gateway.upstream")

TRANSFERS_PER_DRIVER = 128


class Exchanging(Transfer, Protocol):
    """A transfer as the client runs it (upstream/exchange.py)."""

    request: Request
    handle: Handle | None

    def ended(self, error: int, message: str) -> None: ...


class UpstreamClient:
    """Starts transfers, queues those beyond the limit, and stops them on request."""

    def __init__(self, limit: int, per_driver: int = TRANSFERS_PER_DRIVER) -> None:
        self.limit = limit
        self._per_driver = per_driver
        count = -(-limit // per_driver)
        self._drivers = tuple(Driver(self._finished, -(-limit // count)) for _ in range(count))
        self._idle_watch = IdleWatch(self._silent)
        self._idle: list[Handle] = []
        self._busy: dict[pycurl.Curl, Handle] = {}  # the handle of each Curl the driver runs
        self._handles = 0  # made so far, idle or busy
        self._waiting: collections.deque[Exchanging] = collections.deque()
        # Each exchange's duration, by provider (upstream/attempt.py): children found once.
        self.seconds = metrics.Children(metrics.UPSTREAM_SECONDS)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the transfers run on (upstream/driver.py)."""
        return self._drivers[0].loop

    @property
    def waiting(self) -> int:
        """Requests queued behind the limit now."""
        return len(self._waiting)

    def start(self, exchange: Exchanging) -> None:
        """Start `exchange`'s request now, or once a transfer ends; its `ended` says how it went."""
        if self._idle:
            self._begin(self._idle.pop(), exchange)
        elif self._handles < self.limit:
            driver = self._drivers[self._handles // self._per_driver]
            self._handles += 1
            self._begin(Handle(driver), exchange)
        else:
            self._waiting.append(exchange)

    def stop(self, exchange: Exchanging) -> None:
        """Cancel `exchange`: out of the queue, or its transfer removed (never from inside one
        of that transfer's callbacks; Exchange.cancel defers it). It ends as CANCELLED."""
        handle = exchange.handle
        if handle is not None and handle.transfer is exchange:
            handle.driver.remove(handle.curl)
            self._finished(handle.curl, CANCELLED, "cancelled")
        elif exchange in self._waiting:
            self._waiting.remove(exchange)
            exchange.ended(CANCELLED, "cancelled while waiting for a connection")

    def close(self) -> None:
        self._idle_watch.close()
        for driver in self._drivers:
            driver.close()
        for handle in self._idle:
            handle.curl.close()
        self._idle.clear()

    def _begin(self, handle: Handle, exchange: Exchanging) -> None:
        try:
            handle.prepare(exchange.request, exchange)
        except (ValueError, pycurl.error) as exc:
            handle.clean()
            self._idle.append(handle)
            exchange.ended(pycurl.E_BAD_FUNCTION_ARGUMENT, f"request refused: {exc}")
            return
        exchange.handle = handle
        self._busy[handle.curl] = handle
        handle.driver.add(handle.curl)
        idle = exchange.request.idle_timeout
        if idle is not None:
            self._idle_watch.watch(handle, idle)

    def _silent(self, handle: Handle, message: str) -> None:
        """The idle watch found the transfer silent too long: it ends as a timeout."""
        handle.driver.remove(handle.curl)
        self._finished(handle.curl, pycurl.E_OPERATION_TIMEDOUT, message)

    def _finished(self, curl: pycurl.Curl, error: int, message: str) -> None:
        handle = self._busy.pop(curl)
        exchange = handle.transfer
        if exchange is not None and handle.lines:
            handle.hand_over(exchange)  # an answer with no body: its head is read only now
        self._idle_watch.forget(handle)
        handle.clean()
        self._idle.append(handle)
        if exchange is not None:
            exchange.handle = None
            exchange.ended(error, message)
        while self._waiting and self._idle:
            self._begin(self._idle.pop(), self._waiting.popleft())


def open_client(limit: int) -> UpstreamClient:
    """A client of its own with `limit` parallel transfers, on the running event loop."""
    return UpstreamClient(limit)
