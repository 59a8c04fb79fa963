"""limits/shared_breakers.py: following the state's open breakers ends when its task is cancelled."""

from __future__ import annotations

import asyncio

from dsl.table import StateSettings
from limits.limiter import Limiter
from limits.shared_breakers import SharedBreakers


class _LosesACancel:
    """A state whose answer comes just as its caller is cancelled, once: Python 3.11's wait_for
    (in limits/state_client.py) then returns the answer, and the cancel is lost."""

    def __init__(self) -> None:
        self.lost = False

    async def open_breakers(self) -> list[tuple[str, float, str]]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.lost:
                raise
            self.lost = True
        return []


def test_following_ends_when_cancelled_even_if_a_state_call_lost_the_cancel() -> None:
    async def main() -> None:
        limiter = Limiter(state_socket="/run/nowhere.sock")
        limiter.state = StateSettings(timeout=60, breaker_sync=0.01)
        limiter.backend = _LosesACancel()  # type: ignore[assignment]
        follow = asyncio.get_running_loop().create_task(SharedBreakers(limiter).follow(lambda *_: None))
        await asyncio.sleep(0.1)  # in its call to the state
        follow.cancel()
        await asyncio.wait({follow}, timeout=5)
        assert follow.cancelled()

    asyncio.run(main())
