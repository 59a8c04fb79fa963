"""Taking a provider's key out of an answer relayed in chunks.

A provider refusing our key may quote it in its error body: relayed error bodies pass here.
"""

from __future__ import annotations

REDACTED = b"[redacted]"  # what stands in for a provider's key in a relayed answer


class KeyScrubber:
    """Takes a provider's key out of a body that arrives in chunks, also when a chunk
    boundary splits the key: the end of a chunk that could start the key is held back."""

    __slots__ = ("_key", "_held")

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        text = (self._held + data if self._held else data).replace(self._key, REDACTED)
        held = _partial_key_at_end(text, self._key)
        self._held = text[len(text) - held :] if held else b""
        return text[: len(text) - held]

    def close(self) -> bytes:
        held, self._held = self._held, b""
        return held


def _partial_key_at_end(text: bytes, key: bytes) -> int:
    """Length of the longest end of `text` that is a proper beginning of `key`."""
    start = max(0, len(text) - len(key) + 1)
    while (start := text.find(key[:1], start)) != -1:
        if key.startswith(text[start:]):
            return len(text) - start
        start += 1
    return 0
