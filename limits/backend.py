"""What every state backend does, in one atomic step each: admit, settle, read spend, and
share open circuit breakers.

A backend knows nothing of keys, agents or prices: it counts entries under storage keys.
limits/limiter.py turns a request into checks and reads the outcome. Backends: memory
(limits/memory.py), the state process shared by one machine's workers (limits/state_client.py)
and Redis (limits/redis_state.py); all behave alike, and the same tests hold them to it.

Sliding-window log: a window check counts the cost of every entry younger than its window
(an entry made at t counts while now < t + window), so it is exact at every instant, unlike
fixed buckets (twice the limit across a boundary) or GCRA (which refills during a burst).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["count", "window", "concurrent", "budget"]


class StateError(Exception):
    """The state could not be reached or did not answer in time."""


# Not frozen (never changed all the same): made per request, and a frozen dataclass's __init__
# sets each field through object.__setattr__, some 4 K instructions more per instance.
@dataclass(slots=True)
class Check:
    """One limit a request must pass.

    window: admitted when the entries younger than `window` seconds cost at most `limit` with
    this one's `cost` added (a cost above the limit counts as the limit, so that a large request
    passes an empty window); its entries may be corrected later. count: a window whose entries
    all cost 1 and are never corrected (requests per minute), which Redis counts more cheaply.
    concurrent: admitted when fewer than `limit` leases are held; this
    request's lease lasts `window` seconds unless released. budget: admitted while the amount
    spent under `key` is below `limit`; nothing is written.
    """

    kind: Kind
    key: str
    limit: int
    window: float = 0.0
    cost: int = 1


# Not frozen: made per request, as Check above.
@dataclass(slots=True)
class Outcome:
    """What one check found: `used` counts this request when it was admitted; `reset` is the time
    until the window holds nothing again (0 for concurrent and budget checks)."""

    used: int
    reset: float


# Not frozen: made per request, as Check above.
@dataclass(slots=True)
class Admission:
    allowed: bool
    refused: int  # index of the first check that refused, -1 when admitted
    retry_after: float  # seconds until every refusing check could admit this request
    at: float  # the backend's clock when admitted, in its own unit: corrections hand it back
    outcomes: tuple[Outcome, ...]


# Not frozen: made per request, as Check above.
@dataclass(slots=True)
class Correction:
    """`delta` added to a window entry made `at` (actual - reserved tokens; may be negative).

    Made at the original time, it leaves the window with the entry it corrects, so the window's
    sum is exact; a correction whose entry has already left is dropped."""

    key: str
    window: float
    at: float  # Admission.at, as the backend gave it
    delta: int


# Not frozen: made per request, as Check above.
@dataclass(slots=True)
class Charge:
    """`amount` added to the spend counter `key`, which may be forgotten after `expires` (epoch s)."""

    key: str
    amount: int
    expires: float


class Backend(Protocol):
    async def admit(self, checks: Sequence[Check], entry: str) -> Admission:
        """All checks passed and recorded, or none recorded. `entry` names this admission's
        entries and leases (unique per call)."""

    async def settle(
        self, corrections: Sequence[Correction], leases: Sequence[tuple[str, str]], charges: Sequence[Charge],
        entry: str,
    ) -> None:
        """Apply corrections, release leases ((key, entry) pairs) and add charges, in one step."""

    async def spent(self, keys: Sequence[str]) -> list[int]:
        """The spend counters `keys` (0 when absent)."""

    async def open_breaker(self, target: str, until: float, reason: str) -> None:
        """Note that `target` ("provider/model") is open until `until` (epoch s) for `reason`;
        a later time already noted stays."""

    async def open_breakers(self) -> list[tuple[str, float, str]]:
        """The targets open now, (target, until, reason) each; those past their time are forgotten."""

    async def close(self) -> None: ...
