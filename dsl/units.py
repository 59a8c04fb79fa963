"""Sizes (32MiB), durations (30s) and timestamps as the DSL writes them."""

from __future__ import annotations

import re
from datetime import datetime

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$")
_SIZE_FACTORS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)$")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a string such as '32MiB'."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value.strip())
    if match is None:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2)])


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number or a string such as '500ms', '30s', '2m'."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value.strip())
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _DURATION_FACTORS[match.group(2)]


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 date-time, which always carries its offset (so it compares with now in UTC).

    Raises ValueError for anything else, impossible dates such as 2020-13-01 included.
    """
    if not _RFC3339.match(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
