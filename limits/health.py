"""Whether the state answers: each failure counted, each outage logged once (and its end)."""

from __future__ import annotations

import logging
import time

from ops.metrics import STATE_ERRORS

log = logging.getLogger("gateway.limits")

# After a failure, requests follow on_state_error without asking for this long, so that an
# unreachable state costs one timeout per pause rather than one per request.
PAUSE = 0.5


class StateHealth:
    def __init__(self, shown: str, policy: str) -> None:
        self.shown = shown
        self.policy = policy
        self.down_since: float | None = None
        self.last_failure = 0.0

    def failed(self, operation: str, error: Exception) -> None:
        STATE_ERRORS.labels(operation).inc()
        self.last_failure = time.monotonic()
        if self.down_since is None:
            self.down_since = self.last_failure
            log.error("state %s unreachable (%s: %s): following on_state_error=%s until it answers",
                      self.shown, type(error).__name__, error, self.policy)

    def answered(self) -> None:
        if self.down_since is not None:
            log.warning("state %s answers again after %.1fs", self.shown, time.monotonic() - self.down_since)
            self.down_since = None

    def resting(self) -> bool:
        """True shortly after a failure: do not ask now."""
        return self.down_since is not None and time.monotonic() - self.last_failure < PAUSE
