"""The idle watch: a transfer whose upstream has been silent for its idle timeout is ended.

One timer for every transfer watched, not one per transfer nor per chunk: each libcurl
callback notes the time on its handle (`Handle.heard`, upstream/handle.py), and a sweep,
every quarter of the shortest idle timeout watched, ends the transfers silent for their
whole idle timeout. So a silent transfer ends between its idle timeout and a quarter more,
and a request costs a set insertion and removal, a chunk a clock read.

Time the gateway holds a transfer paused (a slow client reader; a streamed request body
waiting for the client's next chunk) is not the upstream's silence: it restarts the count.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from time import monotonic

from upstream.handle import Handle

SWEEPS = 4  # per shortest idle timeout watched: how late past its timeout a silent transfer ends


class IdleWatch:
    """Sweeps the transfers `watch` was given, calling `expire(handle, message)` for each silent one."""

    def __init__(self, expire: Callable[[Handle, str], None]) -> None:
        self._expire = expire
        self._handles: dict[Handle, float] = {}  # the transfers watched, with their idle timeouts
        self._timer: asyncio.TimerHandle | None = None
        self._every = math.inf  # seconds between sweeps while any transfer is watched

    def watch(self, handle: Handle, idle: float) -> None:
        """Watch a transfer that has just started, with `idle` seconds of silence allowed."""
        handle.heard = monotonic()
        self._handles[handle] = idle
        every = idle / SWEEPS
        if every < self._every:  # the first transfer, or a shorter timeout: sweep sooner
            self._every = every
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(every, self._sweep)

    def forget(self, handle: Handle) -> None:
        """The transfer is over (no-op for one never watched)."""
        self._handles.pop(handle, None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._handles.clear()
        self._every = math.inf

    def _sweep(self) -> None:
        self._timer = None
        now = monotonic()
        silent: list[tuple[Handle, float]] = []
        shortest = math.inf
        for handle, idle in self._handles.items():
            if handle.held_back:
                handle.heard = now
            elif now - handle.heard >= idle:
                silent.append((handle, idle))
                continue
            shortest = min(shortest, idle)
        self._every = shortest / SWEEPS
        if shortest < math.inf:
            self._timer = asyncio.get_running_loop().call_later(self._every, self._sweep)
        for handle, idle in silent:  # each is forgotten as it is ended
            self._expire(handle, f"the upstream sent nothing for {idle:g}s (idle_timeout)")
