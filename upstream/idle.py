"""The idle watch: a transfer whose upstream has been silent for its idle timeout is ended.

One timer for every transfer watched, and nothing per chunk: a sweep, every eighth of the
shortest idle timeout watched, reads how many bytes each transfer has moved so far
(libcurl counts them: head, body, upload) and notes the sweep's time when the count
changed. A transfer whose count has not changed for its idle timeout is ended. So it ends
between its idle timeout and a quarter more (never early), and a request costs an insertion
and a removal here.

Time the gateway holds a transfer paused (a slow client reader; a streamed request body
waiting for the client's next chunk) is not the upstream's silence: it restarts the count.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from time import monotonic

import pycurl

from upstream.handle import Handle

SWEEPS = 8  # per shortest idle timeout watched: how late past its timeout a silent transfer may end


# What the watch keeps of a transfer: [idle timeout, bytes the transfer had moved at the last
# sweep, monotonic time when that count was first seen]. A list, not an object: one per request.
_Watched = list[float]


class IdleWatch:
    """Sweeps the transfers `watch` was given, calling `expire(handle, message)` for each silent one."""

    def __init__(self, expire: Callable[[Handle, str], None]) -> None:
        self._expire = expire
        self._watched: dict[Handle, _Watched] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._every = math.inf  # seconds between sweeps while any transfer is watched

    def watch(self, handle: Handle, idle: float) -> None:
        """Watch a transfer that has just started, with `idle` seconds of silence allowed."""
        self._watched[handle] = [idle, 0, monotonic()]
        every = idle / SWEEPS
        if every < self._every:  # the first transfer, or a shorter timeout: sweep sooner
            self._every = every
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(every, self._sweep)

    def forget(self, handle: Handle) -> None:
        """The transfer is over (no-op for one never watched)."""
        self._watched.pop(handle, None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched.clear()
        self._every = math.inf

    def _sweep(self) -> None:
        self._timer = None
        now = monotonic()
        silent: list[tuple[Handle, float]] = []
        shortest = math.inf
        for handle, watched in self._watched.items():
            idle, before, at = watched
            moved = _moved(handle)
            if moved != before or handle.held_back:
                watched[1:] = moved, now
            elif now - at >= idle:
                silent.append((handle, idle))
                continue
            shortest = min(shortest, idle)
        self._every = shortest / SWEEPS
        if shortest < math.inf:
            self._timer = asyncio.get_running_loop().call_later(self._every, self._sweep)
        for handle, idle in silent:  # each is forgotten as it is ended
            self._expire(handle, f"the upstream sent nothing for {idle:g}s (idle_timeout)")


def _moved(handle: Handle) -> int:
    """Bytes the transfer has received (head and body) and sent, as libcurl counts them."""
    getinfo = handle.curl.getinfo
    return getinfo(pycurl.HEADER_SIZE) + getinfo(pycurl.SIZE_DOWNLOAD_T) + getinfo(pycurl.SIZE_UPLOAD_T)
