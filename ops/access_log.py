"""The access log: one JSON object per line on stderr, written in batches.

The logging module costs tens of microseconds a record (a LogRecord, a lock, a
formatter, a flush); lines are instead gathered for FLUSH_DELAY and written together,
still one line per request: one write for many requests, even one at a time. Pre-fork
workers share one stderr: each write of theirs holds at most PIPE_BUF bytes of whole
lines, so that no two workers' lines interleave on a pipe (a single line longer than that
goes alone).
"""

from __future__ import annotations

import asyncio
import select
import sys
from typing import Any, BinaryIO

import orjson

FLUSH_DELAY = 0.01  # s a line may wait for the others of its batch; `flush` at stop writes the last


class AccessLog:
    """Lines waiting for their batch's write (one AccessLog per runtime)."""

    def __init__(self, stream: BinaryIO | None = None, shared: bool = False) -> None:
        """`shared`: other processes write to the same stream (pre-fork workers)."""
        self.loop: asyncio.AbstractEventLoop | None = None  # kept: asking costs a getpid() on 3.11
        self.stream = stream
        self.pending: list[bytes] = []
        self.shared = shared

    def write(self, entry: dict[str, Any]) -> None:
        if not self.pending:
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            self.loop.call_later(FLUSH_DELAY, self.flush)
        self.pending.append(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        if not self.pending:  # written at stop, before its timer
            return
        lines, self.pending = self.pending, []
        stream = self.stream or sys.stderr.buffer
        if not self.shared:
            stream.write(b"".join(lines))
            stream.flush()
            return
        batch: list[bytes] = []
        size = 0
        for line in lines:
            if batch and size + len(line) > select.PIPE_BUF:
                stream.write(b"".join(batch))
                stream.flush()
                batch, size = [], 0
            batch.append(line)
            size += len(line)
        stream.write(b"".join(batch))
        stream.flush()
