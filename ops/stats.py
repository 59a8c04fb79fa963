"""Process statistics for /statsz: what an operator asks first, as JSON."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from converters.usage import Usage
from ops import metrics

STARTED = time.time()


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


_by_model: dict[str, ModelStats] = {}
# Clients choose provider/model names freely; past this many distinct names, the rest are
# counted together as "other" so that neither /statsz nor /metrics grows without bound.
MAX_MODEL_LABELS = 256
OTHER = "other"


def model_label(name: str) -> str:
    """`name`, or 'other' once the set of names seen is full."""
    if name in _by_model or len(_by_model) < MAX_MODEL_LABELS:
        return name
    return OTHER


def record(model: str, status: int, usage: Usage | None) -> None:
    """Count one answered request against `model` (a configured name, so bounded)."""
    stats = _by_model.get(model)
    if stats is None:
        stats = _by_model[model] = ModelStats()
    stats.requests += 1
    if status >= 400:
        stats.errors += 1
    if usage is not None and usage.reported:
        stats.input_tokens += usage.input
        stats.output_tokens += usage.output
        stats.cached_tokens += usage.cached
        stats.reasoning_tokens += usage.reasoning
        for kind, value in (("input", usage.input), ("output", usage.output),
                            ("cached", usage.cached), ("reasoning", usage.reasoning)):
            if value:
                metrics.TOKENS.labels(model=model, kind=kind).inc(value)


def snapshot() -> dict[str, Any]:
    return {
        "uptime_seconds": round(time.time() - STARTED, 3),
        "models": {name: asdict(stats) for name, stats in sorted(_by_model.items())},
    }
