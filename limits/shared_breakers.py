"""Open circuit breakers shared through the state, so that a target tripped in one worker or
instance is skipped by all of them without each paying the failures again.

Each opening made here is written to the state (limits/backend.py's `open_breaker`) in a task
of its own, never delaying the request that caused it; every `state.breaker_sync` this process
reads the openings of all (`open_breakers`) and hands them to the board
(upstream/breaker.py's `opened_elsewhere`). Both go through the limiter's guard: a state that
does not answer within its timeout is counted and logged once per outage, as for limits, and
the breakers then simply stay this process's own until it answers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from limits.limiter import Limiter
from limits.state import shared

_IDLE = 1.0  # seconds between looks at the settings while sharing is off

Apply = Callable[[tuple[str, str], float, str], None]  # (provider, model), until (epoch s), reason


class SharedBreakers:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.writing: set[asyncio.Task[None]] = set()

    def active(self) -> bool:
        """Sharing is on, and the state is shared with other processes (not this one's memory)."""
        state = self.limiter.state
        return (state is not None and state.breaker_sync > 0 and self.limiter.backend is not None
                and shared(state, self.limiter.state_socket))

    def publish(self, key: tuple[str, str], until: float, reason: str) -> None:
        """The board's `on_open`: write the opening to the state, without waiting for it."""
        if not self.active():
            return
        assert self.limiter.backend is not None
        write = self.limiter.backend.open_breaker(f"{key[0]}/{key[1]}", until, reason)
        task = asyncio.get_running_loop().create_task(self.limiter.guarded("open_breaker", write))
        self.writing.add(task)
        task.add_done_callback(self.writing.discard)

    async def follow(self, apply: Apply) -> None:
        """Forever: every `state.breaker_sync`, hand each target open in the state to `apply`.

        Until its task is cancelled, even when a call to the state lost that cancel (Python
        3.11's wait_for returns an answer that came as the cancel did): the stop would
        otherwise wait on this loop for ever."""
        task = asyncio.current_task()
        while True:
            state = self.limiter.state
            await asyncio.sleep(state.breaker_sync if state is not None and self.active() else _IDLE)
            if not self.active():
                continue
            assert self.limiter.backend is not None
            opened = await self.limiter.guarded("open_breakers", self.limiter.backend.open_breakers())
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            for target, until, reason in opened or ():
                provider, _, model = target.partition("/")
                apply((provider, model), until, reason)
