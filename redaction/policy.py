"""A redaction policy as routes.yaml declares it, compiled: which patterns, and where they apply."""

from __future__ import annotations

from dataclasses import dataclass

from redaction.scanner import Scanner


@dataclass(frozen=True, slots=True)
class Policy:
    """One entry of `redaction.policies`.

    `block`: a request holding a match is refused (400) instead of sent masked.
    `answers`: answers are redacted too (text, reasoning, tool-call arguments).
    `system`: system prompts are redacted too. `cache_marked`: so are blocks marked
    `cache_control` (rewriting them costs the provider's prompt cache its prefix).
    """

    name: str
    scanner: Scanner
    block: bool = False
    answers: bool = True
    system: bool = False
    cache_marked: bool = False

    @property
    def holdback(self) -> int:
        """The most characters a streamed answer field may be held back."""
        return max((p.holdback for p in self.scanner.patterns), default=0)
