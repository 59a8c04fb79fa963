"""Fresh request ids: random UUIDs (version 4) as 32 hex digits, as uuid.uuid4().hex gives them.

Drawn BATCH at a time: one getrandom system call, one hex conversion and one split for them
all, where an id made on its own (os.urandom(16), two bit fixes, .hex()) cost four times as
much per request. Each is as random as uuid4's, so ids stay unique across pre-fork workers and
restarts; a serving process makes its own RequestIds (runtime/process.py), after any fork, so
no two processes ever hold the same batch.
"""

from __future__ import annotations

import os

BATCH = 256  # ids per draw (4 KiB of random bytes)
_UUID_BYTES = 16
# Each id's byte 6 starts with the version (4), its byte 8 with the RFC 4122 variant (binary 10).
_VERSION = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))


class RequestIds:
    """What is left of the current batch; `fresh()` takes the next id."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left: list[str] = []

    def fresh(self) -> str:
        if not self.left:
            self.left = draw(BATCH)
        return self.left.pop()


def draw(count: int) -> list[str]:
    """`count` random version-4 UUIDs, as 32 hex digits each."""
    raw = bytearray(os.urandom(_UUID_BYTES * count))
    raw[6::_UUID_BYTES] = raw[6::_UUID_BYTES].translate(_VERSION)
    raw[8::_UUID_BYTES] = raw[8::_UUID_BYTES].translate(_VARIANT)
    return raw.hex(" ", _UUID_BYTES).split(" ")
