"""Server-sent events framing: pass only whole events, so a cut never tears one."""

from __future__ import annotations

from collections.abc import Callable, Iterator

MAX_EVENT = 16 * 1024 * 1024
"""Longest upstream event held back while waiting for its end. Real events are a few KiB
(a whole image in base64 a few MiB); past this the stream is ended, not buffered on."""


class EventTooLarge(ValueError):
    """An upstream SSE event grew past MAX_EVENT without its terminating blank line."""

    def __init__(self) -> None:
        super().__init__(f"upstream sent an SSE event larger than {MAX_EVENT >> 20} MiB")


_IN_PLACE = 64 * 1024  # a partial event this long is extended in place, no longer copied whole


def _cut(buffer: bytes | bytearray, start: int = 0) -> int:
    """Index just past the last complete event in `buffer` (0 when there is none), looking
    only at terminators that begin at `start` or later."""
    lf = buffer.rfind(b"\n\n", start)
    crlf = buffer.rfind(b"\r\n\r\n", start)
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _hold(tail: bytearray, data: bytes | bytearray) -> None:
    """Append to a partial event, refusing to hold one past MAX_EVENT."""
    if len(tail) + len(data) > MAX_EVENT:
        raise EventTooLarge
    tail += data


def _take(tail: bytearray, count: int) -> bytes:
    """Remove and return the first `count` bytes of `tail` (copied once)."""
    with memoryview(tail) as view:
        out = view[:count].tobytes()
    del tail[:count]
    return out


class SSEFramer:
    """Holds back a partial event until its terminating blank line arrives.

    Only the new bytes (and the three before them) are searched for that line, and a
    partial event longer than _IN_PLACE grows in place rather than being copied with
    every chunk, so an event costs time in proportion to its length.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail: bytes | bytearray = b""

    def feed(self, data: bytes) -> bytes:
        tail = self._tail
        if not tail:
            # Whole events, as a provider usually sends them: nothing to search. (A slice compared:
            # bytes.endswith builds its argument format anew per call, some 200 instructions more.)
            if data[-2:] == b"\n\n":
                return data
            cut = _cut(data)
            if cut == len(data):
                return data
            self._tail = data[cut:]
            return data[:cut]
        size = len(tail)
        if size < _IN_PLACE:
            buffer = tail + data
        else:
            if size + len(data) > MAX_EVENT:
                raise EventTooLarge
            buffer = tail if isinstance(tail, bytearray) else bytearray(tail)
            buffer += data
        cut = _cut(buffer, size - 3 if size > 3 else 0)  # a negative start would count from the end
        if not cut:
            self._tail = buffer
            return b""
        self._tail = buffer[cut:]
        out = buffer[:cut]
        return out if type(out) is bytes else bytes(out)

    def feeding(self, then: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        """`feed`, then `then` over what it lets out (nothing for nothing): a chain's settled feed
        when the framer comes first (every pass-through pair's). A read of whole events with
        nothing held, the usual one, goes to `then` in one call: `feed`'s call and the chain's
        step between the two (some 800 instructions an event) left out."""
        feed = self.feed

        def framed(data: bytes) -> bytes:
            if not self._tail and data[-2:] == b"\n\n":  # as `feed` asks first
                return then(data)
            data = feed(data)
            return then(data) if data else b""

        return framed

    def close(self) -> bytes:
        """A clean end: an unterminated last event is completed rather than lost."""
        if not self._tail:
            return b""  # the usual end: nothing held
        tail, self._tail = bytes(self._tail), b""
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
    yield from payloads(events)


class SSEDataReader:
    """Bytes cut anywhere in, the `data:` payloads of the events they complete out.

    What converters use instead of SSEFramer + iter_data: one pass per feed, the
    same payloads whatever the splits. CRLF is normalised as the bytes arrive (a CR
    that ends a chunk waits for the next, which may start with its LF), and a partial
    event grows in place, searched only where it grew, as in SSEFramer.
    """

    __slots__ = ("_tail", "_cr")

    def __init__(self) -> None:
        self._tail = bytearray()
        self._cr = False

    def feed(self, data: bytes) -> list[bytes]:
        events = self.events(data)
        return payloads(events) if events else []

    @property
    def idle(self) -> bool:
        """Nothing held back: the next bytes start an event."""
        return not self._tail and not self._cr

    def close(self) -> list[bytes]:
        """A clean end: an unterminated last event still counts, as SSEFramer.close() has it."""
        return payloads(self.close_events())

    def events(self, data: bytes) -> bytes:
        """The whole events `data` completes, with LF line ends, each ending in its blank
        line: for readers that take a run of events at once (b"" when none)."""
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.find(b"\r") >= 0:
            if data.endswith(b"\r"):
                data = data[:-1]
                self._cr = True
            data = data.replace(b"\r\n", b"\n")
        tail = self._tail
        if not tail:
            end = data.rfind(b"\n\n")
            if end < 0:
                _hold(tail, data)
                return b""
            if end + 2 < len(data):
                _hold(tail, data[end + 2 :])
                return data[: end + 2]
            return data
        start = max(len(tail) - 1, 0)
        _hold(tail, data)
        end = tail.rfind(b"\n\n", start)
        return _take(tail, end + 2) if end >= 0 else b""

    def close_events(self) -> bytes:
        """events() at a clean end: an unterminated last event is ended (b"" when none is held)."""
        tail = bytes(self._tail) + (b"\r" if self._cr else b"")
        self._tail.clear()
        self._cr = False
        return tail + b"\n\n" if tail.strip() else b""


def payloads(events: bytes) -> list[bytes]:
    """Payloads of LF-separated events (the last one ended by its blank line or not). Per
    upstream event, so the usual event (one data line, perhaps after an `event:` line) is
    cut out with a few finds, not line splits."""
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
