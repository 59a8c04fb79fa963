"""Server-sent events framing: pass only whole events, so a cut never tears one."""

from __future__ import annotations

from collections.abc import Iterator

MAX_EVENT = 16 * 1024 * 1024
"""Longest upstream event held back while waiting for its end. Real events are a few KiB
(a whole image in base64 a few MiB); past this the stream is ended, not buffered on."""


class EventTooLarge(ValueError):
    """An upstream SSE event grew past MAX_EVENT without its terminating blank line."""

    def __init__(self) -> None:
        super().__init__(f"upstream sent an SSE event larger than {MAX_EVENT >> 20} MiB")


def _cut(buffer: bytes) -> int:
    """Index just past the last complete event in `buffer` (0 when there is none)."""
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


class _Pending:
    """The pieces of an event still waiting for its end, kept apart so that a long event is
    joined once, when it completes, instead of copied again with every chunk."""

    __slots__ = ("pieces", "size")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_EVENT:
            raise EventTooLarge
        self.pieces.append(data)

    def last(self, count: int) -> bytes:
        """The last `count` bytes held (fewer if fewer are): where a terminator may have begun."""
        tail = b""
        for piece in reversed(self.pieces):
            tail = piece[-count:] + tail
            if len(tail) >= count:
                return tail[-count:]
        return tail

    def take(self, more: bytes | memoryview = b"") -> bytes:
        """Everything held, then `more`; nothing is held afterwards."""
        pieces, self.pieces, self.size = self.pieces, [], 0
        return b"".join([*pieces, more]) if more else b"".join(pieces)


class SSEFramer:
    """Holds back a partial event until its terminating blank line arrives.

    Only the new bytes (and the three before them) are searched for that line, so an
    event of any length costs time in proportion to its length.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = _Pending()

    def feed(self, data: bytes) -> bytes:
        if self._pending.pieces:
            seam = self._pending.last(3)
            cut = max(_cut(data), _cut(seam + data[:3]) - len(seam))
            if cut <= 0:
                self._pending.add(data)
                return b""
            out = self._pending.take(memoryview(data)[:cut])
        else:
            cut = _cut(data)
            if cut == len(data):
                return data
            out = data[:cut]
        if cut < len(data):
            self._pending.add(data[cut:] if cut else data)
        return out

    def close(self) -> bytes:
        """A clean end: an unterminated last event is completed rather than lost."""
        tail = self._pending.take()
        if not tail.strip():
            return b""
        return tail + (b"\n\n" if not tail.endswith(b"\n") else b"\n")

    @property
    def pending(self) -> bool:
        return bool(self._pending.pieces)


def iter_data(events: bytes) -> Iterator[bytes]:
    """The `data:` payloads of complete events, one per event (multi-line data joined by \\n)."""
    if events.find(b"\r") >= 0:
        events = events.replace(b"\r\n", b"\n")
    yield from _payloads(events)


class SSEDataReader:
    """Bytes cut anywhere in, the `data:` payloads of the events they complete out.

    What converters use instead of SSEFramer + iter_data: one pass per feed, the
    same payloads whatever the splits (CRLF is normalised as the bytes arrive; a CR
    that ends a chunk waits for the next one, which may start with its LF).
    """

    __slots__ = ("_pending", "_cr")

    def __init__(self) -> None:
        self._pending = _Pending()
        self._cr = False

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.find(b"\r") >= 0:
            if data.endswith(b"\r"):
                data = data[:-1]
                self._cr = True
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end >= 0:
            events = self._pending.take(memoryview(data)[:end]) if self._pending.pieces else data[:end]
            rest = data[end + 2 :]
        elif data[:1] == b"\n" and self._pending.last(1) == b"\n":  # the blank line began before
            events = self._pending.take()[:-1]
            rest = data[1:]
        else:
            if data:
                self._pending.add(data)
            return []
        if rest:
            self._pending.add(rest)
        return _payloads(events)

    def close(self) -> list[bytes]:
        """A clean end: an unterminated last event still counts, as SSEFramer.close() has it."""
        tail = self._pending.take() + (b"\r" if self._cr else b"")
        self._cr = False
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
