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
    if events.find(b"\r") >= 0:
        events = events.replace(b"\r\n", b"\n")
    yield from _payloads(events)


class SSEDataReader:
    """Bytes cut anywhere in, the `data:` payloads of the events they complete out.

    What converters use instead of SSEFramer + iter_data: one pass per feed, the
    same payloads whatever the splits (CRLF is normalised as the bytes arrive).
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._tail + data if self._tail else data
        if buffer.find(b"\r") >= 0:
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._tail = buffer
            return []
        self._tail = buffer[end + 2 :]
        return _payloads(buffer[:end])

    def close(self) -> list[bytes]:
        """A clean end: an unterminated last event still counts, as SSEFramer.close() has it."""
        tail, self._tail = self._tail, b""
        return _payloads(tail) if tail.strip() else []


def _payloads(events: bytes) -> list[bytes]:
    """Payloads of LF-separated events. Per upstream event, so the usual event (one data
    line, perhaps after an `event:` line) is cut out with a few finds, not line splits."""
    out = []
    for raw in events.split(b"\n\n"):
        at = raw.find(b"data:")
        if at < 0:
            continue
        if (at == 0 or raw[at - 1] == 0x0A) and raw.find(b"data:", at + 5) < 0:
            end = raw.find(b"\n", at)
            out.append(raw[at + 5 : end if end >= 0 else len(raw)].lstrip(b" "))
            continue
        lines = [line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out
