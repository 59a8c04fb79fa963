"""JSON the gateway writes back out: orjson reads 1024 levels of nesting but writes fewer.

A client document that parsed fine can still be too deep to re-encode for a provider;
that is the client's request being unusable (a 400), never an internal error.
"""

from __future__ import annotations

import orjson

# orjson.dumps refuses arrays and objects nested deeper than this.
MAX_DEPTH = 254
# orjson.dumps hands back its whole working buffer (4 KiB at least, about half again the
# JSON when longer): a request body held while its answer streams would keep all of it.
# Shorter JSON than this is copied out to its own size (a copy of microseconds at most).
_TRIMMED = 64 * 1024


def encode(value: object, what: str) -> bytes:
    """`value` as JSON; ValueError naming `what` when it nests deeper than orjson writes."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise ValueError(f"{what} nests JSON more than {MAX_DEPTH} levels deep") from None
    return bytes(memoryview(encoded)) if len(encoded) < _TRIMMED else encoded
