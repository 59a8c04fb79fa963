"""Server-sent events framing: pass only whole events, so a cut never tears one."""

from __future__ import annotations

from collections.abc import Iterator


def _cut(buffer: bytes) -> int:
    """Index just past the last complete event in `buffer` (0 when there is none)."""
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


class SSEFramer:
    """Holds back a partial event until its terminating blank line arrives."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        buffer = self._tail + data if self._tail else data
        cut = _cut(buffer)
        if cut == len(buffer):
            self._tail = b""
            return buffer
        self._tail = buffer[cut:]
        return buffer[:cut]

    def close(self) -> bytes:
        """A clean end: an unterminated last event is completed rather than lost."""
        tail, self._tail = self._tail, b""
        if not tail.strip():
            return b""
        return tail + (b"\n\n" if not tail.endswith(b"\n") else b"\n")

    @property
    def pending(self) -> bool:
        return bool(self._tail)


def iter_data(events: bytes) -> Iterator[bytes]:
    """The `data:` payloads of complete events, one per event (multi-line data joined by \\n)."""
    for raw in events.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
        if lines:
            yield b"\n".join(lines)
