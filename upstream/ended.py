"""How one upstream transfer ended: what handlers and the catalog read once it is over."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pycurl

# The error of a transfer stopped by the gateway (the client left, a hedge lost, a deadline).
CANCELLED = pycurl.E_ABORTED_BY_CALLBACK


# Not frozen (never changed all the same): made per request, and a frozen dataclass's __init__
# sets each field through object.__setattr__, some 4 K instructions more per instance.
@dataclass(slots=True)
class Ended:
    """The status the upstream answered (0: none) and, when the transfer failed, libcurl's
    error code and message."""

    status: int
    error: int = 0
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.error != 0


@functools.lru_cache(maxsize=64)
def ended_well(status: int) -> Ended:
    """How a transfer that completed ends: one Ended for each status (an Ended is never
    changed), not one made per request."""
    return Ended(status)
