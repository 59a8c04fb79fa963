"""What an answer cost, from its usage and the models: registry's prices, and the budget periods.

Amounts are integers of nano-USD (1e-9 USD): prices are USD per million tokens, so a token
at price p costs p * 1000 nano-USD, exact for prices of up to three decimals, and sums of
integers neither drift nor round in Redis.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from converters.usage import Usage

NANO = 1_000_000_000  # nano-USD per USD


def price_of(models: Mapping[str, Mapping[str, Any]], model: str) -> Mapping[str, Any] | None:
    """The registry's `price:` of `model` (provider/model or the bare model name), or None."""
    for name in (model, model.partition("/")[2]):
        entry = models.get(name) if name else None
        if isinstance(entry, Mapping) and isinstance(entry.get("price"), Mapping):
            return entry["price"]
    return None


def cost(price: Mapping[str, Any], usage: Usage) -> int:
    """nano-USD of `usage`: cached prompt tokens at cached_input (input when it has none), the
    other prompt tokens at input, output tokens at output."""
    cached = min(usage.cached, usage.input)
    cached_price = price.get("cached_input", price.get("input", 0))
    total = (usage.input - cached) * price.get("input", 0) + cached * cached_price
    total += usage.output * price.get("output", 0)
    return round(total * 1000)


def period(per: str, now: datetime) -> tuple[str, float]:
    """(label, end as epoch seconds) of the UTC calendar day or month holding `now`."""
    now = now.astimezone(UTC)
    if per == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start.timestamp() + 86400
    days = calendar.monthrange(now.year, now.month)[1]
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m"), start.timestamp() + days * 86400
