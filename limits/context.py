"""The context-overflow guard: which targets a prompt fits, and trimming one that fits none.

A target's context window and output limit come from its own keys in the agent, else the
`models:` registry. A prompt's size is the estimate of limits/estimate.py (no tokenizer),
multiplied by a per-model calibration: a moving ratio of the provider's real
`prompt_tokens` to the estimate, since tokenizers differ by model and language. A target
whose window cannot take the prompt plus the requested output (or whose output limit is
below the requested output) is skipped before any request; when no target fits, the
client hears 400 with the numbers.

Trimming (an agent's `overflow.trim`) drops the oldest whole turns, a turn being a
user's message and everything up to the next one, so tool calls stay with their
results; the system prompt and the last `keep_last_turns` turns are always kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dsl.table import OverflowSettings, Target
from limits.estimate import prompt_tokens

# How far one observation moves a model's calibration (an exponential moving average).
_CALIBRATION_WEIGHT = 0.2
_RATIO_BOUNDS = (0.25, 4.0)  # a ratio outside these says the estimate is broken, not the model
MAX_CALIBRATED_MODELS = 1024  # models are configuration, but a provider/model request names its own
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class Window:
    """A target's limits in tokens; None where unknown."""

    context: int | None
    output: int | None


_UNKNOWN = Window(None, None)  # a target whose limits are nowhere configured


def window_of(target: Target, models: Mapping[str, Mapping[str, Any]]) -> Window:
    """The target's own context_window and max_output, else the registry's for its model."""
    info = models.get(target.model)
    if info is None and target.context_window is None and target.max_output is None:
        return _UNKNOWN  # the common case, met by every target of every agent request
    info = info or {}
    context = target.context_window if target.context_window is not None else info.get("context_window")
    output = target.max_output if target.max_output is not None else info.get("max_output")
    return Window(context if isinstance(context, int) else None, output if isinstance(output, int) else None)


def requested_output(document: Mapping[str, Any]) -> int:
    """The output tokens the request asks for at most (0 when it does not say)."""
    for name in _OUTPUT_FIELDS:
        value = document.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


class Calibration:
    """Per model, the moving ratio of real prompt tokens to the estimate (1.0 until observed)."""

    __slots__ = ("ratios",)

    def __init__(self) -> None:
        self.ratios: dict[str, float] = {}

    def ratio(self, model: str) -> float:
        return self.ratios.get(model, 1.0)

    def observe(self, model: str, estimate: int, actual: int) -> None:
        """An answer's real prompt tokens for a prompt estimated at `estimate`."""
        if estimate <= 0 or actual <= 0:
            return
        if model not in self.ratios and len(self.ratios) >= MAX_CALIBRATED_MODELS:
            return
        low, high = _RATIO_BOUNDS
        seen = min(max(actual / estimate, low), high)
        old = self.ratios.get(model)
        self.ratios[model] = seen if old is None else old + _CALIBRATION_WEIGHT * (seen - old)

    def overflowed(self, model: str, estimate: int, window: int | None) -> None:
        """The provider refused the prompt as too long: it is at least as long as the window."""
        if window is not None and estimate > 0 and estimate * self.ratio(model) <= window:
            self.ratios[model] = min((window + 1) / estimate, _RATIO_BOUNDS[1])


@dataclass(frozen=True, slots=True)
class Fit:
    """How a prompt of `tokens` (calibrated) plus `output` meets one target's window."""

    target: Target
    window: Window
    tokens: int
    output: int

    @property
    def over_by(self) -> int:
        """Tokens past the window (0 when it fits or the window is unknown)."""
        window = self.window
        context = 0 if window.context is None else max(0, self.tokens + self.output - window.context)
        output = 0 if window.output is None else max(0, self.output - window.output)
        return max(context, output)

    @property
    def fits(self) -> bool:
        return self.over_by == 0


def fit(target: Target, window: Window, estimate: int, output: int, settings: OverflowSettings,
        calibration: Calibration) -> Fit:
    """`target`'s fit for a prompt estimated at `estimate` tokens asking for `output` more."""
    tokens = math.ceil(estimate * calibration.ratio(target.model) * (1 + settings.margin))
    return Fit(target, window, tokens, output)


def refusal_message(fits: Sequence[Fit], agent: str) -> str:
    """The 400's message: the numbers of the prompt and of every target's window."""
    first = fits[0]
    targets = ", ".join(
        f"{f.target.label} ({_limits_text(f.window)}, over by {f.over_by})" for f in fits[:8]
    )
    return (f"This request's prompt is about {first.tokens} tokens and asks for up to {first.output} "
            f"output tokens, more than any target of '{agent}' can take: {targets}. Shorten the "
            "messages or lower max_tokens.")


def _limits_text(window: Window) -> str:
    parts = []
    if window.context is not None:
        parts.append(f"context window {window.context}")
    if window.output is not None:
        parts.append(f"max output {window.output}")
    return ", ".join(parts) or "no known limits"


def trimmed(document: dict[str, Any], keep_last_turns: int, budget: int) -> tuple[dict[str, Any], int]:
    """`document` with its fewest oldest whole turns dropped that bring its estimate within
    `budget` tokens (never the system messages, never the last `keep_last_turns` turns), and
    how many messages were dropped; `document` itself and 0 when no such trim fits."""
    messages = document.get("messages")
    if not isinstance(messages, list):
        return document, 0
    starts = [i for i, message in enumerate(messages) if _starts_turn(message)]
    droppable = len(starts) - max(keep_last_turns, 1)
    if droppable <= 0:
        return document, 0
    kept = [i for i in range(starts[0]) if isinstance(messages[i], dict)
            and messages[i].get("role") in ("system", "developer")]
    empty = prompt_tokens({"messages": []})
    before = [0]  # estimated tokens of the messages before each index, counted once each
    for message in messages:
        before.append(before[-1] + prompt_tokens({"messages": [message]}) - empty)
    kept_tokens = sum(before[i + 1] - before[i] for i in kept)
    total = prompt_tokens(document)
    for turns in range(1, droppable + 1):
        cut = starts[turns]
        if total - (before[cut] - kept_tokens) <= budget:
            return {**document, "messages": [messages[i] for i in kept] + messages[cut:]}, cut - len(kept)
    return document, 0


def _starts_turn(message: object) -> bool:
    """A user's own message (not an Anthropic tool result, which belongs to the turn before)."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    return not (isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "tool_result" for part in content))


def largest(windows: Iterable[Window]) -> int | None:
    """The largest known context window (None when none is known)."""
    known = [w.context for w in windows if w.context is not None]
    return max(known) if known else None
