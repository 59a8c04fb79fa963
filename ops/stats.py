"""Process statistics for /statsz: what an operator asks first, as JSON.

Requests, errors and latency are counted for every answered request with a model
(or endpoint) label; tokens when the upstream reported usage; per API key too.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from converters.usage import Usage
from ops import metrics

# Clients choose provider/model names freely; past this many distinct names, the rest are
# counted together as "other", and each name is cut to MAX_LABEL_LENGTH characters, so that
# neither /statsz nor /metrics grows without bound.
MAX_MODEL_LABELS = 256
MAX_LABEL_LENGTH = 256
OTHER = "other"
_LATENCY_SAMPLES = 1024


@dataclass(slots=True)
class Counters:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latencies: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_LATENCY_SAMPLES)
    )
    # This label's children of its token counter (gateway_tokens_total for a model label,
    # gateway_key_tokens_total for a key name), by kind in the order of _KINDS: None until
    # the kind first counts more than 0, so that /metrics shows only the kinds ever reported.
    token_series: list[Any] = field(default_factory=lambda: [None] * len(_KINDS))

    def count(self, failed: bool, seconds: float) -> None:
        """One answered request: an error when it `failed` (status 400 or above)."""
        self.requests += 1
        if failed:
            self.errors += 1
        self.latencies.append(seconds)

    def add_usage(self, usage: Usage, metric: Any, name: str) -> None:
        """One answer's tokens, here and in `metric`'s children of `name` (this label)."""
        self.input_tokens += usage.input
        self.output_tokens += usage.output
        self.cached_tokens += usage.cached
        self.reasoning_tokens += usage.reasoning
        # One line per kind of _KINDS: a loop over them would cost more than the counting.
        series = self.token_series
        if usage.input:
            (series[0] or self._token_child(0, metric, name)).inc(usage.input)
        if usage.output:
            (series[1] or self._token_child(1, metric, name)).inc(usage.output)
        if usage.cached:
            (series[2] or self._token_child(2, metric, name)).inc(usage.cached)
        if usage.reasoning:
            (series[3] or self._token_child(3, metric, name)).inc(usage.reasoning)

    def _token_child(self, index: int, metric: Any, name: str) -> Any:
        """The child of kind _KINDS[index], made the first time that kind counts."""
        child = self.token_series[index] = metric.labels(name, _KINDS[index])
        return child

    def export(self) -> dict[str, Any]:
        """Everything, latency samples included, for another process to merge (ops/instance_stats.py)."""
        return {**self.totals(), "latencies": list(self.latencies)}

    @classmethod
    def merged(cls, exports: Iterable[dict[str, Any]]) -> Counters:
        """The sum of several processes' exports; percentiles then span all their samples."""
        total = cls(latencies=collections.deque())
        for part in exports:
            for name in _TOTALS:
                setattr(total, name, getattr(total, name) + part[name])
            total.latencies.extend(part["latencies"])
        return total

    def totals(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _TOTALS}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = self.totals()
        if self.latencies:
            ordered = sorted(self.latencies)
            out["latency_ms"] = {
                f"p{q}": round(ordered[min(len(ordered) - 1, len(ordered) * q // 100)] * 1000, 2)
                for q in (50, 90, 99)
            }
        return out


_KINDS = ("input", "output", "cached", "reasoning")  # the token counters' `kind` label
_TOTALS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")


def _counters(table: dict[str, Counters], name: str) -> Counters:
    counters = table.get(name)
    if counters is None:
        counters = table[name] = Counters()
    return counters


class Stats:
    """Counters per model label and per API key name since the process started (held by the runtime)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.by_model: dict[str, Counters] = {}
        self.by_key: dict[str, Counters] = {}
        self.changes = 0  # bumped by every update: a worker rewrites its stats file only after one
        self.redactions: dict[str, collections.Counter[str]] = {}  # by direction, then kind

    def model_label(self, name: str) -> str:
        """`name` (cut to MAX_LABEL_LENGTH), or 'other' once the set of names seen is full."""
        name = name[:MAX_LABEL_LENGTH]
        if name in self.by_model or len(self.by_model) < MAX_MODEL_LABELS:
            return name
        return OTHER

    def observe(self, model: str, status: int, seconds: float, key: str | None) -> None:
        """Count one answered request against a bounded model label (and the caller's key name)."""
        self.changes += 1
        failed = status >= 400
        # Found with a lookup; made (by a call) only the first time.
        (self.by_model.get(model) or _counters(self.by_model, model)).count(failed, seconds)
        if key:
            (self.by_key.get(key) or _counters(self.by_key, key)).count(failed, seconds)

    def add_usage(self, model: str, usage: Usage | None, key: str | None) -> None:
        """Tokens the upstream reported for one request."""
        if usage is None or not usage.reported:
            return
        self.changes += 1
        (self.by_model.get(model) or _counters(self.by_model, model)).add_usage(usage, metrics.TOKENS, model)
        if key:
            (self.by_key.get(key) or _counters(self.by_key, key)).add_usage(usage, metrics.KEY_TOKENS, key)

    def add_redactions(self, direction: str, kind: str, count: int) -> None:
        """Matches redaction replaced; kinds are configured names, so the table stays small."""
        self.changes += 1
        self.redactions.setdefault(direction, collections.Counter())[kind] += count

    def export(self) -> dict[str, Any]:
        return {
            "models": {name: c.export() for name, c in self.by_model.items()},
            "keys": {name: c.export() for name, c in self.by_key.items()},
            "redactions": {direction: dict(kinds) for direction, kinds in self.redactions.items()},
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "models": {name: c.summary() for name, c in sorted(self.by_model.items())},
            "keys": {name: c.summary() for name, c in sorted(self.by_key.items())},
            "redactions": summed_redactions([self.export()]),
        }


def summed_redactions(exports: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The redaction counts of several exports (workers' files) added up, sorted."""
    total: dict[str, collections.Counter[str]] = {}
    for export in exports:
        for direction, kinds in export.get("redactions", {}).items():
            total.setdefault(direction, collections.Counter()).update(kinds)
    return {direction: dict(sorted(kinds.items())) for direction, kinds in sorted(total.items())}
