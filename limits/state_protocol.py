"""The state process's wire format: each message is a 4-byte big-endian length and an orjson array.

Requests: ["admit", checks, entry], ["settle", corrections, leases, charges, entry],
["spent", keys], ["open_breaker", target, until, reason], ["open_breakers"]; each answered, in
order, by one message: the admission, null, the amounts, null, or [[target, until, reason], ...].
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

from limits.backend import Admission, Charge, Check, Correction, Outcome

MAX_MESSAGE = 4 * 1024 * 1024  # a request of thousands of checks fits; anything larger is a bug
_LENGTH = struct.Struct(">I")


def frame(message: Any) -> bytes:
    payload = orjson.dumps(message)
    return _LENGTH.pack(len(payload)) + payload


async def read_message(reader: asyncio.StreamReader) -> Any:
    """The next message; raises asyncio.IncompleteReadError at the end and ValueError past MAX_MESSAGE."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_MESSAGE:
        raise ValueError(f"state message of {length} bytes")
    return orjson.loads(await reader.readexactly(length))


def checks_out(checks: list[Check]) -> list[list[Any]]:
    return [[c.kind, c.key, c.limit, c.window, c.cost] for c in checks]


def checks_in(items: list[list[Any]]) -> list[Check]:
    return [Check(kind, key, int(limit), float(window), int(cost))
            for kind, key, limit, window, cost in items]


def admission_out(admission: Admission) -> list[Any]:
    return [admission.allowed, admission.refused, admission.retry_after, admission.at,
            [[o.used, o.reset] for o in admission.outcomes]]


def admission_in(item: list[Any]) -> Admission:
    allowed, refused, retry_after, at, outcomes = item
    return Admission(bool(allowed), int(refused), float(retry_after), float(at),
                     tuple(Outcome(int(used), float(reset)) for used, reset in outcomes))


def corrections_out(corrections: list[Correction]) -> list[list[Any]]:
    return [[c.key, c.window, c.at, c.delta] for c in corrections]


def corrections_in(items: list[list[Any]]) -> list[Correction]:
    return [Correction(key, float(window), float(at), int(delta)) for key, window, at, delta in items]


def charges_out(charges: list[Charge]) -> list[list[Any]]:
    return [[c.key, c.amount, c.expires] for c in charges]


def charges_in(items: list[list[Any]]) -> list[Charge]:
    return [Charge(key, int(amount), float(expires)) for key, amount, expires in items]
