"""The state in this process's memory: exact for one process (one worker, or the state process
that one machine's workers share, limits/state_server.py).

Every method runs to completion without awaiting, so on one event loop each is atomic.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from limits.backend import Admission, Charge, Check, Correction, Outcome

_WINDOWS = ("window", "count")  # a count is a window whose entries cost 1


@dataclass(slots=True)
class _Log:
    """One window's entries, (time, cost) oldest first, and their sum."""

    entries: list[tuple[float, int]] = field(default_factory=list)
    total: int = 0

    def expire(self, now: float, window: float) -> None:
        """Drop the entries made at or before now - window."""
        gone = bisect.bisect_right(self.entries, (now - window, float("inf")))
        if gone:
            self.total -= sum(cost for _, cost in self.entries[:gone])
            del self.entries[:gone]

    def wait(self, now: float, window: float, need: int) -> float:
        """Seconds until entries costing at least `need` have left the window."""
        freed = 0
        for at, cost in self.entries:
            freed += cost
            if freed >= need:
                return max(0.0, at + window - now)
        return window


class MemoryBackend:
    """limits/backend.py's Backend in a dict. `clock` is injectable so tests can stand at a window's edge."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.logs: dict[str, _Log] = {}
        self.leases: dict[str, dict[str, float]] = {}  # key → entry → expiry
        self.spend: dict[str, tuple[int, float]] = {}  # key → (amount, expires)
        self.breakers: dict[str, tuple[float, str]] = {}  # open target → (until, reason)

    async def admit(self, checks: Sequence[Check], entry: str) -> Admission:
        now = self.clock()
        outcomes: list[Outcome] = []
        refused = -1
        retry_after = 0.0
        for index, check in enumerate(checks):
            used, wait = self._look(check, now)
            outcomes.append(Outcome(used, self._reset(check, now)))
            if wait is not None:
                refused = index if refused < 0 else refused
                retry_after = max(retry_after, wait)
        if refused >= 0:
            return Admission(False, refused, retry_after, now, tuple(outcomes))
        for index, check in enumerate(checks):
            if check.kind in _WINDOWS:
                log = self.logs.setdefault(check.key, _Log())
                log.entries.append((now, check.cost))  # now is the newest time: the list stays sorted
                log.total += check.cost
                outcomes[index] = Outcome(log.total, check.window)
            elif check.kind == "concurrent":
                held = self.leases.setdefault(check.key, {})
                held[entry] = now + check.window
                outcomes[index] = Outcome(len(held), 0.0)
        return Admission(True, -1, 0.0, now, tuple(outcomes))

    def _look(self, check: Check, now: float) -> tuple[int, float | None]:
        """(used now, None when this check admits the request, else seconds until it could)."""
        if check.kind in _WINDOWS:
            log = self.logs.get(check.key)
            if log is None:
                return 0, None
            log.expire(now, check.window)
            over = log.total + min(check.cost, check.limit) - check.limit
            return log.total, (log.wait(now, check.window, over) if over > 0 else None)
        if check.kind == "concurrent":
            held = self.leases.get(check.key, {})
            for entry in [entry for entry, expiry in held.items() if expiry <= now]:
                del held[entry]
            return len(held), (1.0 if len(held) >= check.limit else None)
        spent = self._spent(check.key, now)
        return spent, (1.0 if spent >= check.limit else None)

    def _reset(self, check: Check, now: float) -> float:
        log = self.logs.get(check.key) if check.kind in _WINDOWS else None
        return max(0.0, log.entries[-1][0] + check.window - now) if log and log.entries else 0.0

    def _spent(self, key: str, now: float) -> int:
        amount, expires = self.spend.get(key, (0, 0.0))
        return amount if expires > now else 0

    async def settle(
        self, corrections: Sequence[Correction], leases: Sequence[tuple[str, str]], charges: Sequence[Charge],
        entry: str,
    ) -> None:
        now = self.clock()
        for correction in corrections:
            log = self.logs.get(correction.key)
            if log is None or correction.at <= now - correction.window:
                continue  # the entry it corrects has left the window
            bisect.insort(log.entries, (correction.at, correction.delta))
            log.total += correction.delta
        for key, lease in leases:
            self.leases.get(key, {}).pop(lease, None)
        for charge in charges:
            self.spend[charge.key] = (self._spent(charge.key, now) + charge.amount, charge.expires)

    async def spent(self, keys: Sequence[str]) -> list[int]:
        now = self.clock()
        return [self._spent(key, now) for key in keys]

    async def open_breaker(self, target: str, until: float, reason: str) -> None:
        if until > self.breakers.get(target, (0.0, ""))[0]:
            self.breakers[target] = (until, reason)

    async def open_breakers(self) -> list[tuple[str, float, str]]:
        now = self.clock()
        for target in [target for target, (until, _) in self.breakers.items() if until <= now]:
            del self.breakers[target]
        return [(target, until, reason) for target, (until, reason) in self.breakers.items()]

    async def close(self) -> None:
        return None
