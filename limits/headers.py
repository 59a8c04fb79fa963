"""OpenAI's rate-limit response headers, from an API key's limits as a decision found them.

    x-ratelimit-limit-requests: 60        x-ratelimit-limit-tokens: 150000
    x-ratelimit-remaining-requests: 59    x-ratelimit-remaining-tokens: 149984
    x-ratelimit-reset-requests: 1s        x-ratelimit-reset-tokens: 6m0s

`reset` is the time until the limit is back to its initial state (the window empty),
written as OpenAI writes it (Go's duration format).
"""

from __future__ import annotations

import math


def duration_text(seconds: float) -> str:
    """Go's duration format as OpenAI sends it: '0s', '250ms', '1.5s', '59s', '6m0s', '1h0m0s'."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    text = f"{milliseconds / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def ratelimit_headers(kind: str, limit: int, used: int, reset: float) -> dict[str, str]:
    """The three headers of `kind` ('requests' for rpm, 'tokens' for tpm)."""
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(max(0, limit - used)),
        f"x-ratelimit-reset-{kind}": duration_text(reset),
    }


def retry_after_text(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
