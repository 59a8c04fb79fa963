"""How one upstream transfer ended: what handlers and the catalog read once it is over."""

from __future__ import annotations

from dataclasses import dataclass

import pycurl

# The error of a transfer stopped by the gateway (the client left, a hedge lost, a deadline).
CANCELLED = pycurl.E_ABORTED_BY_CALLBACK


@dataclass(frozen=True, slots=True)
class Ended:
    """The status the upstream answered (0: none) and, when the transfer failed, libcurl's
    error code and message."""

    status: int
    error: int = 0
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.error != 0
