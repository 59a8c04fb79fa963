"""Usage accounting: the tokens an upstream reported, counted per model and key."""

from __future__ import annotations

from dataclasses import dataclass

from converters.usage import Usage
from stages.stage import Call, Stage


@dataclass(frozen=True, slots=True)
class Accounting(Stage):
    """Records the answer's usage (runtime stats, metrics, the access log) for requests
    counted under a model."""

    def done(self, call: Call, usage: Usage | None) -> None:
        if call.model_label:
            call.record_usage(usage)
